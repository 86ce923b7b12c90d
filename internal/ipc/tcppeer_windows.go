package ipc

import (
	"fmt"
	"net"
)

// tcpPeer names the process at the other end of a loopback TCP connection
// from the owner-PID connection table: the row whose local end is c's
// remote end and whose remote end is c's local end is the peer's socket,
// and its owner the peer. A peer the table does not name stays unknown, so
// it needs the token and may not ask for kills.
func tcpPeer(c *net.TCPConn) (Identity, error) {
	owner := connOwner.Load()
	if owner == nil {
		return Identity{}, nil
	}
	local, lok := c.LocalAddr().(*net.TCPAddr)
	remote, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return Identity{}, fmt.Errorf("TCP peer: connection has no TCP addresses")
	}
	pid, ok, err := (*owner)(remote.AddrPort(), local.AddrPort())
	if err != nil || !ok {
		return Identity{}, err
	}
	sid, admin, err := processUser(uint32(pid))
	if err != nil {
		// The peer exited, or cannot be opened: unknown, not guessed.
		return Identity{}, nil
	}
	return Identity{PID: pid, UID: sid, Admin: admin, Known: true, TCP: true}, nil
}
