package ipc

import (
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// localPeer reads a unix socket peer's credentials with SO_PEERCRED. The
// kernel records them when the peer connects, so they name the process
// that connected even if it has since passed the socket on.
func localPeer(c net.Conn) (Identity, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Identity{}, nil
	}
	var cred *unix.Ucred
	err := controlFD(uc, func(fd int) (err error) {
		cred, err = unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		return err
	})
	if err != nil {
		return Identity{}, fmt.Errorf("peer credentials (SO_PEERCRED): %w", err)
	}
	return Identity{PID: int(cred.Pid), UID: strconv.FormatUint(uint64(cred.Uid), 10), Admin: cred.Uid == 0, Known: true}, nil
}
