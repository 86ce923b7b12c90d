//go:build unix && !linux

package unix

import (
	"syscall"

	xunix "golang.org/x/sys/unix"
)

// probeTCPLoopback is true: with SO_REUSEADDR, BSD-derived stacks let a
// wildcard bind share a port with a socket on a specific address, so a
// server on 127.0.0.1 would go unseen; probing the loopback address too
// catches the holders dev servers are.
const probeTCPLoopback = true

// privilegeName is what lets a process bind privileged ports.
const privilegeName = "root"

func socket(domain, typ int) (int, error) {
	// Without SOCK_CLOEXEC, hold off fork while the descriptor is unmarked,
	// as package net does.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := xunix.Socket(domain, typ, 0)
	if err != nil {
		return -1, err
	}
	xunix.CloseOnExec(fd)
	return fd, nil
}

// privilegedBelow returns the first port an unprivileged process may bind.
func privilegedBelow() uint16 { return 1024 }
