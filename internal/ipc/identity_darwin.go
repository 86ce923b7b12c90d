package ipc

import (
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// localPeer reads a unix socket peer's pid (LOCAL_PEERPID) and effective
// uid (LOCAL_PEERCRED, what getpeereid returns). The kernel records both
// when the peer connects.
func localPeer(c net.Conn) (Identity, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Identity{}, nil
	}
	var (
		pid  int
		cred *unix.Xucred
	)
	err := controlFD(uc, func(fd int) (err error) {
		if pid, err = unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID); err != nil {
			return fmt.Errorf("LOCAL_PEERPID: %w", err)
		}
		if cred, err = unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED); err != nil {
			return fmt.Errorf("LOCAL_PEERCRED: %w", err)
		}
		return nil
	})
	if err != nil {
		return Identity{}, fmt.Errorf("peer credentials: %w", err)
	}
	return Identity{PID: pid, UID: strconv.FormatUint(uint64(cred.Uid), 10), Admin: cred.Uid == 0, Known: true}, nil
}
