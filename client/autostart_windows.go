package client

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// detached gives the daemon no console and a process group of its own, so
// that closing this console or pressing Ctrl-C in it does not stop it.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP,
		HideWindow:    true,
	}
}
