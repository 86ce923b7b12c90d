package windows

import (
	"fmt"
	"net/netip"

	xwin "golang.org/x/sys/windows"
)

// tcpTableOwnerPIDConnections is TCP_TABLE_OWNER_PID_CONNECTIONS: connected
// sockets only, with their owners.
const tcpTableOwnerPIDConnections = 4

// ConnOwner is the package's ConnOwner, for the daemon to name loopback
// TCP callers (ipc.SetConnOwner).
func (h *Host) ConnOwner(local, remote netip.AddrPort) (pid int, ok bool, err error) {
	return ConnOwner(local, remote)
}

// ConnOwner returns the PID of the process owning the TCP connection whose
// local end is local and remote end is remote, from the owner tables; ok
// is false when no such connection is listed, or its owner is not told
// (PID 0).
func ConnOwner(local, remote netip.AddrPort) (pid int, ok bool, err error) {
	af, v6 := uint32(xwin.AF_INET), false
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		af, v6 = xwin.AF_INET6, true
	}
	b, err := ownerTable(procGetExtendedTcp, af, tcpTableOwnerPIDConnections)
	if err != nil {
		return 0, false, fmt.Errorf("read the TCP connection table: %w", err)
	}
	rows, err := decodeTCPTable(b, v6)
	if err != nil {
		return 0, false, err
	}
	owner, found := connOwner(rows, local, remote)
	if !found || owner == 0 {
		return 0, false, nil
	}
	return int(owner), true, nil
}
