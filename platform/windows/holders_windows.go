package windows

import (
	"errors"
	"fmt"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

var (
	iphlpapi            = xwin.NewLazySystemDLL("iphlpapi.dll")
	procGetExtendedTcp  = iphlpapi.NewProc("GetExtendedTcpTable")
	procGetExtendedUdp  = iphlpapi.NewProc("GetExtendedUdpTable")
	errOwnerTableChurns = errors.New("the table kept growing between calls")
)

// Table classes of GetExtendedTcpTable and GetExtendedUdpTable.
const (
	tcpTableOwnerPIDListener = 3 // TCP_TABLE_OWNER_PID_LISTENER
	udpTableOwnerPID         = 1 // UDP_TABLE_OWNER_PID
)

// Holders returns the processes with a TCP listener or a bound UDP socket on
// port, over IPv4 and IPv6, from the owner-PID tables. A process appears
// once per protocol, with the first address it holds the port on.
//
// A socket whose owner PID is 0 yields no entry: Windows gives 0 only for
// sockets it owns itself or that outlived their process, and Wine gives 0
// for (nearly) every socket. PortInUse counts those sockets too.
// A process that may not be opened (another user's, a protected one) is
// still reported, with the facts the process snapshot gives: PID, image
// name, parent and whether it is a system process.
func (h *Host) Holders(port uint16, proto broker.Protocol) ([]broker.ProcessInfo, error) {
	if !proto.Valid() {
		return nil, &broker.FieldError{Field: "protocol", Rule: "must be tcp, udp or tcp+udp"}
	}
	rows, err := ownerRows(proto)
	if err != nil {
		return nil, fmt.Errorf("holders of port %d: %w", port, err)
	}
	type key struct {
		pid   uint32
		proto broker.Protocol
	}
	seen := make(map[key]bool)
	var (
		out  []broker.ProcessInfo
		snap *snapshot
	)
	for _, r := range rows {
		k := key{r.PID, r.Protocol}
		if r.PID == 0 || !r.holdsPort(port, proto) || seen[k] {
			continue
		}
		seen[k] = true
		info, err := h.Inspect(int(r.PID))
		switch {
		case errors.Is(err, broker.ErrNoProcess):
			// It exited since the table was read.
			continue
		case err != nil:
			if snap == nil {
				s, serr := takeSnapshot()
				if serr != nil {
					return nil, fmt.Errorf("holders of port %d: %w", port, serr)
				}
				snap = &s
			}
			e, ok := snap.byPID[int(r.PID)]
			if !ok {
				continue
			}
			info = broker.ProcessInfo{
				Process: broker.Process{PID: e.PID, Name: e.Name},
				PPID:    e.PPID,
				System:  isSystemProcess(e.PID, e.Name, ""),
			}
		}
		info.LocalAddr = r.Local.String()
		info.Protocol = r.Protocol
		out = append(out, info)
	}
	return out, nil
}

// PortInUse reports whether any socket holds port for proto — a TCP
// listener or a bound UDP socket, over IPv4 or IPv6 — whether or not its
// owner can be told. Under Wine, where Holders finds no owners, this still
// says the port is held.
func (h *Host) PortInUse(port uint16, proto broker.Protocol) (bool, error) {
	if !proto.Valid() {
		return false, &broker.FieldError{Field: "protocol", Rule: "must be tcp, udp or tcp+udp"}
	}
	rows, err := ownerRows(proto)
	if err != nil {
		return false, fmt.Errorf("sockets on port %d: %w", port, err)
	}
	for _, r := range rows {
		if r.holdsPort(port, proto) {
			return true, nil
		}
	}
	return false, nil
}

// ownerRows reads the owner tables proto covers, IPv4 before IPv6.
func ownerRows(proto broker.Protocol) ([]socketRow, error) {
	var out []socketRow
	for _, v6 := range []bool{false, true} {
		af := uint32(xwin.AF_INET)
		if v6 {
			af = xwin.AF_INET6
		}
		if proto.HasTCP() {
			b, err := ownerTable(procGetExtendedTcp, af, tcpTableOwnerPIDListener)
			if err != nil {
				return nil, fmt.Errorf("read the TCP table: %w", err)
			}
			rows, err := decodeTCPTable(b, v6)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
		}
		if proto.HasUDP() {
			b, err := ownerTable(procGetExtendedUdp, af, udpTableOwnerPID)
			if err != nil {
				return nil, fmt.Errorf("read the UDP table: %w", err)
			}
			rows, err := decodeUDPTable(b, v6)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
		}
	}
	return out, nil
}

// ownerTable calls GetExtendedTcpTable or GetExtendedUdpTable, which share
// a signature: (table, *size, order, family, class, reserved). Sockets come
// and go between the sizing call and the read, so it retries a few times
// with room to spare.
func ownerTable(proc *xwin.LazyProc, af, class uint32) ([]byte, error) {
	if err := proc.Find(); err != nil {
		return nil, err
	}
	size := uint32(4096)
	for range 8 {
		// Words keep the table aligned for its DWORDs.
		buf := make([]uint32, (size+3)/4)
		n := uint32(4 * len(buf))
		r, _, _ := proc.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0, uintptr(af), uintptr(class), 0)
		switch errno := xwin.Errno(r); errno {
		case 0:
			return unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf))[:min(n, uint32(4*len(buf)))], nil
		case xwin.ERROR_INSUFFICIENT_BUFFER:
			size = n + n/4 + 1024
		case xwin.ERROR_NOT_SUPPORTED, xwin.Errno(xwin.WSAEAFNOSUPPORT):
			// No such stack: IPv6 is not installed.
			return []byte{0, 0, 0, 0}, nil
		default:
			return nil, fmt.Errorf("%s: %w", proc.Name, errno)
		}
	}
	return nil, fmt.Errorf("%s: %w", proc.Name, errOwnerTableChurns)
}
