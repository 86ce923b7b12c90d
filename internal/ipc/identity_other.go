//go:build !linux && !darwin && !windows

package ipc

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// localPeer has no peer-credential call to make on this OS, so it refuses
// unix socket peers rather than let them in unidentified.
func localPeer(c net.Conn) (Identity, error) {
	if _, ok := c.(*net.UnixConn); !ok {
		return Identity{}, nil
	}
	return Identity{}, fmt.Errorf("unix socket peer credentials on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
