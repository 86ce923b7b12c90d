package windows

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/portbroker/portbroker/broker"
)

// The owner-PID tables that iphlpapi's GetExtendedTcpTable and
// GetExtendedUdpTable fill: a DWORD row count, then packed rows. Every field
// is a DWORD or a byte array, so there is no padding. DWORDs are
// little-endian on every Windows architecture; addresses are in network
// order, and a port sits in network order in the low 16 bits of its DWORD,
// that is in the DWORD's first two bytes.
const (
	tcp4RowSize = 24 // MIB_TCPROW_OWNER_PID: state, local addr, local port, remote addr, remote port, pid
	tcp6RowSize = 56 // MIB_TCP6ROW_OWNER_PID: local addr[16], scope, port, remote addr[16], scope, port, state, pid
	udp4RowSize = 12 // MIB_UDPROW_OWNER_PID: local addr, local port, pid
	udp6RowSize = 28 // MIB_UDP6ROW_OWNER_PID: local addr[16], scope, port, pid

	// tcpStateListen is MIB_TCP_STATE_LISTEN.
	tcpStateListen = 2
)

// socketRow is one socket of an owner table.
type socketRow struct {
	Protocol broker.Protocol
	Local    netip.AddrPort
	// Remote is the peer of a connected TCP socket; the zero value otherwise.
	Remote netip.AddrPort
	// State is the MIB_TCP_STATE of a TCP socket, 0 for UDP.
	State uint32
	// PID owns the socket. It is 0 when Windows does not tell, which Wine
	// does for every socket.
	PID uint32
}

// decodeTCPTable decodes a MIB_TCPTABLE_OWNER_PID (v6 false) or
// MIB_TCP6TABLE_OWNER_PID (v6 true). Bytes after the last row are ignored:
// the buffer is usually larger than the table.
func decodeTCPTable(b []byte, v6 bool) ([]socketRow, error) {
	if v6 {
		return decodeTable(b, "tcp6", tcp6RowSize, func(r []byte) socketRow {
			return socketRow{
				Protocol: broker.TCP,
				Local:    netip.AddrPortFrom(addr6(r[0:16], r[16:20]), port(r[20:24])),
				Remote:   netip.AddrPortFrom(addr6(r[24:40], r[40:44]), port(r[44:48])),
				State:    le32(r[48:52]),
				PID:      le32(r[52:56]),
			}
		})
	}
	return decodeTable(b, "tcp4", tcp4RowSize, func(r []byte) socketRow {
		return socketRow{
			Protocol: broker.TCP,
			Local:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[4:8])), port(r[8:12])),
			Remote:   netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[12:16])), port(r[16:20])),
			State:    le32(r[0:4]),
			PID:      le32(r[20:24]),
		}
	})
}

// decodeUDPTable decodes a MIB_UDPTABLE_OWNER_PID (v6 false) or
// MIB_UDP6TABLE_OWNER_PID (v6 true).
func decodeUDPTable(b []byte, v6 bool) ([]socketRow, error) {
	if v6 {
		return decodeTable(b, "udp6", udp6RowSize, func(r []byte) socketRow {
			return socketRow{
				Protocol: broker.UDP,
				Local:    netip.AddrPortFrom(addr6(r[0:16], r[16:20]), port(r[20:24])),
				PID:      le32(r[24:28]),
			}
		})
	}
	return decodeTable(b, "udp4", udp4RowSize, func(r []byte) socketRow {
		return socketRow{
			Protocol: broker.UDP,
			Local:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[0:4])), port(r[4:8])),
			PID:      le32(r[8:12]),
		}
	})
}

func decodeTable(b []byte, name string, rowSize int, row func([]byte) socketRow) ([]socketRow, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%s owner table: %d bytes, too short for the row count", name, len(b))
	}
	n := uint64(le32(b))
	if need := 4 + n*uint64(rowSize); uint64(len(b)) < need {
		return nil, fmt.Errorf("%s owner table: %d rows need %d bytes, have %d", name, n, need, len(b))
	}
	rows := make([]socketRow, n)
	for i := range rows {
		off := 4 + i*rowSize
		rows[i] = row(b[off : off+rowSize])
	}
	return rows, nil
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// port reads a port from the low 16 bits of a DWORD, in network order.
func port(b []byte) uint16 { return binary.BigEndian.Uint16(b[:2]) }

// addr6 reads an IPv6 address, with its scope ID as the zone when it is
// link-local: other addresses have no zone, whatever the scope field holds
// (Wine fills it for ::1).
func addr6(a, scope []byte) netip.Addr {
	ip := netip.AddrFrom16([16]byte(a))
	if id := le32(scope); id != 0 && ip.IsLinkLocalUnicast() {
		ip = ip.WithZone(strconv.FormatUint(uint64(id), 10))
	}
	return ip
}

// holdsPort reports whether row is a socket holding port for proto: a TCP
// listener or a bound UDP socket.
func (r socketRow) holdsPort(port uint16, proto broker.Protocol) bool {
	if r.Local.Port() != port {
		return false
	}
	switch r.Protocol {
	case broker.TCP:
		return proto.HasTCP() && r.State == tcpStateListen
	case broker.UDP:
		return proto.HasUDP()
	}
	return false
}

// connOwner returns the owner PID of the connected TCP socket whose ends
// are local and remote. IPv4-mapped addresses match their IPv4 form, so a
// dual-stack socket is found in either table.
func connOwner(rows []socketRow, local, remote netip.AddrPort) (uint32, bool) {
	same := func(a, b netip.AddrPort) bool {
		return a.Port() == b.Port() && a.Addr().Unmap().WithZone("") == b.Addr().Unmap().WithZone("")
	}
	for _, r := range rows {
		if r.Protocol == broker.TCP && r.State != tcpStateListen && same(r.Local, local) && same(r.Remote, remote) {
			return r.PID, true
		}
	}
	return 0, false
}
