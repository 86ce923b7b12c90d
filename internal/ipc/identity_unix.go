//go:build unix

package ipc

import "net"

// controlFD runs f on c's file descriptor without taking it out of the
// runtime's poller (as (*net.UnixConn).File would, with a dup).
func controlFD(c *net.UnixConn, f func(fd int) error) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
