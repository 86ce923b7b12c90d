package client

import (
	"errors"

	"golang.org/x/sys/windows"
)

// lostBindRace reports whether a bind failed because another socket took
// the port: WSAEADDRINUSE, or WSAEACCES when that socket asked for
// exclusive use.
func lostBindRace(err error) bool {
	return errors.Is(err, windows.WSAEADDRINUSE) || errors.Is(err, windows.WSAEACCES)
}
