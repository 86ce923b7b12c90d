package unix

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	xunix "golang.org/x/sys/unix"
)

// Layouts of <linux/inet_diag.h>.
const (
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states, inet_diag_sockid
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, inet_diag_sockid, 5 × u32
	// diagBufferSize holds a dump message: the kernel sizes them to the
	// reader's buffer, from about 8 KiB up to 32 KiB.
	diagBufferSize = 32 << 10
)

// diagSockets asks the kernel's sock_diag for the sockets of table in the
// states of mask (bit n for state n) with local port port. buf receives
// the replies; diagBufferSize is enough. It is what
// "ss" uses: for listeners it walks only the listening hash, where
// /proc/net/tcp formats every connection, TIME_WAIT included.
func diagSockets(table socketTable, states uint32, port uint16, buf []byte) ([]netSocket, error) {
	fd, err := xunix.Socket(xunix.AF_NETLINK, xunix.SOCK_DGRAM|xunix.SOCK_CLOEXEC, xunix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer xunix.Close(fd)

	req := make([]byte, syscall.NLMSG_HDRLEN+sizeofInetDiagReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], xunix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], xunix.NLM_F_REQUEST|xunix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // sequence number
	body := req[syscall.NLMSG_HDRLEN:]
	body[0], body[1] = table.family, table.ipproto
	ne.PutUint32(body[4:], states)
	if err := xunix.Sendto(fd, req, 0, &xunix.SockaddrNetlink{Family: xunix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag send: %w", err)
	}

	var socks []netSocket
	for {
		n, _, err := xunix.Recvfrom(fd, buf, 0)
		if err == xunix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case xunix.NLMSG_DONE:
				return socks, nil
			case xunix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, fmt.Errorf("sock_diag reply: short error message")
				}
				return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(-int32(ne.Uint32(m.Data))))
			case xunix.SOCK_DIAG_BY_FAMILY:
				s, err := parseInetDiagMsg(m.Data)
				if err != nil {
					return nil, err
				}
				if s.local.Port() == port {
					socks = append(socks, s)
				}
			}
		}
	}
}

// parseInetDiagMsg parses struct inet_diag_msg. Ports and addresses are in
// network byte order, the rest in the host's.
func parseInetDiagMsg(b []byte) (netSocket, error) {
	if len(b) < sizeofInetDiagMsg {
		return netSocket{}, fmt.Errorf("sock_diag reply: message of %d bytes: want %d or more", len(b), sizeofInetDiagMsg)
	}
	family, state := b[0], b[1]
	id := b[4:52] // sport, dport, src[16], dst[16], if, cookie[8]
	port := binary.BigEndian.Uint16(id[0:])
	var addr netip.Addr
	switch family {
	case xunix.AF_INET:
		addr = netip.AddrFrom4([4]byte(id[4:8]))
	case xunix.AF_INET6:
		addr = netip.AddrFrom16([16]byte(id[4:20]))
	default:
		return netSocket{}, fmt.Errorf("sock_diag reply: address family %d: want AF_INET or AF_INET6", family)
	}
	inode := binary.NativeEndian.Uint32(b[68:])
	return netSocket{local: netip.AddrPortFrom(addr, port), state: state, inode: uint64(inode)}, nil
}
