package ipc

import (
	"errors"
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// localPeer identifies a named pipe client: its pid from the pipe
// (GetNamedPipeClientProcessId), its user and elevation from that
// process's token. The pid is read at accept; a client that exits before
// its token is opened is refused, not guessed at.
func localPeer(c net.Conn) (Identity, error) {
	if _, ok := c.(winio.PipeConn); !ok {
		return Identity{}, nil
	}
	// go-winio's pipe connections expose their handle as Fd.
	fc, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return Identity{}, errors.New("pipe client: the connection exposes no handle")
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(fc.Fd()), &pid); err != nil {
		return Identity{}, fmt.Errorf("pipe client pid (GetNamedPipeClientProcessId): %w", err)
	}
	sid, admin, err := processUser(pid)
	if err != nil {
		return Identity{}, fmt.Errorf("pipe client pid %d: %w", pid, err)
	}
	return Identity{PID: int(pid), UID: sid, Admin: admin, Known: true}, nil
}

// processUser returns the SID of pid's token user and whether the token is
// elevated. Querying a process of the same user needs no privilege, even
// when that process is elevated and this one is not.
func processUser(pid uint32) (sid string, admin bool, err error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "", false, fmt.Errorf("open process: %w", err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return "", false, fmt.Errorf("open process token: %w", err)
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return "", false, fmt.Errorf("token user: %w", err)
	}
	return u.User.Sid.String(), tok.IsElevated(), nil
}
