//go:build unix

package client

import (
	"errors"
	"syscall"
)

// lostBindRace reports whether a bind failed because another socket took
// the port.
func lostBindRace(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
