//go:build unix

package client

import "syscall"

// detached puts the daemon in a session of its own, so that the terminal's
// hangup and Ctrl-C, which go to this process's group, do not reach it.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
