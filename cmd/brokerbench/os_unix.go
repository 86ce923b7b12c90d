//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
)

var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// terminate asks a daemon to stop cleanly.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// privateAddr is the started daemon's address: a socket in brokerbench's
// own 0700 run directory.
func privateAddr(runDir string) string {
	return "unix://" + filepath.Join(runDir, "s.sock")
}
