//go:build !linux

package main

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

func daemonAttr() *syscall.SysProcAttr { return nil }

func ownerAttr() *syscall.SysProcAttr { return nil }

// sampleProc needs /proc; elsewhere the resource figures are skipped.
func sampleProc(int) (procSample, error) {
	return procSample{}, fmt.Errorf("RSS and CPU time are read from /proc, which %s lacks: %w", runtime.GOOS, errors.ErrUnsupported)
}
