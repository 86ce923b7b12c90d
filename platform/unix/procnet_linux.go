package unix

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
)

// tcpListen is TCP_LISTEN, the st column of a listening socket.
const tcpListen = 0x0A

// netSocket is one row of /proc/net/{tcp,tcp6,udp,udp6}.
type netSocket struct {
	local netip.AddrPort
	state uint8
	inode uint64
}

// parseProcNet returns the sockets of a /proc/net/{tcp,tcp6,udp,udp6} table
// whose local port is port. The kernel prints each address as 32-bit words
// in its own byte order, which order is.
//
// A row is "SL: LOCAL REMOTE ST TX:RX TR:WHEN RETRNSMT UID TIMEOUT INODE
// ...", after a header line; addresses are HEX_ADDR:HEX_PORT.
func parseProcNet(data []byte, order binary.ByteOrder, port uint16) ([]netSocket, error) {
	var socks []netSocket
	line, rest, _ := bytes.Cut(data, []byte("\n")) // the header
	if !bytes.Contains(line, []byte("local_address")) {
		return nil, fmt.Errorf("line 1: want a header naming local_address, got %q", clip(line))
	}
	for n := 2; len(rest) > 0; n++ {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := parseProcNetRow(line, order, port)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if s.local.Port() == port {
			socks = append(socks, s)
		}
	}
	return socks, nil
}

// parseProcNetRow parses one row. It parses the local port first and, when
// that is not port, stops there with a netSocket holding only that port:
// most rows are someone else's.
func parseProcNetRow(line []byte, order binary.ByteOrder, port uint16) (netSocket, error) {
	// Columns: 0 "SL:", 1 local, 2 remote, 3 st, 4..8, 9 inode.
	var cols [10][]byte
	rest := line
	for i := range cols {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return netSocket{}, fmt.Errorf("%d columns: want 10 or more", i)
		}
		cols[i], rest = rest[:j], rest[j:]
	}
	hexAddr, hexPort, ok := bytes.Cut(cols[1], []byte(":"))
	if !ok {
		return netSocket{}, fmt.Errorf("local_address %q: want HEX_ADDR:HEX_PORT", clip(cols[1]))
	}
	p, ok := parseHex(hexPort, 16)
	if !ok {
		return netSocket{}, fmt.Errorf("local port %q: want 4 hex digits", clip(hexPort))
	}
	if uint16(p) != port {
		return netSocket{local: netip.AddrPortFrom(netip.Addr{}, uint16(p))}, nil
	}
	addr, err := parseProcNetAddr(hexAddr, order)
	if err != nil {
		return netSocket{}, err
	}
	st, ok := parseHex(cols[3], 8)
	if !ok {
		return netSocket{}, fmt.Errorf("st %q: want 2 hex digits", clip(cols[3]))
	}
	inode, ok := parseDecimal(cols[9])
	if !ok {
		return netSocket{}, fmt.Errorf("inode %q: want a decimal number", clip(cols[9]))
	}
	return netSocket{local: netip.AddrPortFrom(addr, uint16(p)), state: uint8(st), inode: inode}, nil
}

// parseProcNetAddr parses an address of 1 (IPv4) or 4 (IPv6) 32-bit words,
// each printed as 8 hex digits in order.
func parseProcNetAddr(h []byte, order binary.ByteOrder) (netip.Addr, error) {
	var raw [16]byte
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, fmt.Errorf("local address %q: want 8 or 32 hex digits", clip(h))
	}
	words := raw[:len(h)/2]
	if _, err := hex.Decode(words, h); err != nil {
		return netip.Addr{}, fmt.Errorf("local address %q: %w", clip(h), err)
	}
	for i := 0; i < len(words); i += 4 {
		order.PutUint32(words[i:], binary.BigEndian.Uint32(words[i:]))
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(raw[:4])), nil
	}
	return netip.AddrFrom16(raw), nil
}

// parseHex parses 1 to bits/4 hex digits.
func parseHex(b []byte, bits int) (uint64, bool) {
	if len(b) == 0 || len(b) > bits/4 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}
