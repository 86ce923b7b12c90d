package ipc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// tcpPeer names the process at the other end of a loopback TCP
// connection from the kernel's socket table: the row in /proc/net/tcp or
// tcp6 whose local address is c's remote address and whose remote address
// is c's local address is the peer's socket, with its uid and inode; the
// process holding that inode among its descriptors is the peer. The uid is
// known whenever the row is; the PID is 0 when no process, or more than
// one, holds the socket, and then the caller may not ask for kills.
func tcpPeer(c *net.TCPConn) (Identity, error) {
	local, lok := c.LocalAddr().(*net.TCPAddr)
	remote, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return Identity{}, fmt.Errorf("TCP peer: connection has no TCP addresses")
	}
	peerLocal, peerRemote := remote.AddrPort(), local.AddrPort()
	uid, inode, err := findTCPSocket(peerLocal, peerRemote)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{UID: strconv.FormatUint(uint64(uid), 10), Admin: uid == 0, Known: true, TCP: true}
	id.PID = socketHolder(inode)
	return id, nil
}

// findTCPSocket returns the uid and inode of the TCP socket bound to local
// and connected to remote.
func findTCPSocket(local, remote netip.AddrPort) (uid uint32, inode uint64, err error) {
	tables := []string{"/proc/net/tcp", "/proc/net/tcp6"}
	if !local.Addr().Unmap().Is4() || local.Addr().Is4In6() {
		// An IPv4-mapped peer sits in tcp6; a pure IPv6 one only there.
		tables = []string{"/proc/net/tcp6", "/proc/net/tcp"}
	}
	for _, table := range tables {
		data, err := os.ReadFile(table)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, 0, fmt.Errorf("TCP peer: %w", err)
		}
		uid, inode, ok := scanTCPTable(data, local, remote)
		if ok {
			if inode == 0 {
				return 0, 0, fmt.Errorf("TCP peer %s: its socket is closing", local)
			}
			return uid, inode, nil
		}
	}
	return 0, 0, fmt.Errorf("TCP peer %s: not in the kernel's socket table (another network namespace?)", local)
}

// scanTCPTable finds the row for local and remote in a /proc/net/tcp{,6}
// table.
func scanTCPTable(data []byte, local, remote netip.AddrPort) (uid uint32, inode uint64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 512), 4096)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local rem st queues timer retrnsmt uid timeout inode
		if len(f) < 10 {
			continue
		}
		l, err1 := parseProcAddr(f[1])
		r, err2 := parseProcAddr(f[2])
		if err1 != nil || err2 != nil || !sameAddrPort(l, local) || !sameAddrPort(r, remote) {
			continue
		}
		u, err1 := strconv.ParseUint(f[7], 10, 32)
		in, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		return uint32(u), in, true
	}
	return 0, 0, false
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// parseProcAddr parses "0100007F:1F90": the address as the kernel's
// 32-bit words in host byte order, hex, and the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad socket address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad socket address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad socket port %q", s)
	}
	// Each word was printed as a host-order integer: undo that.
	for i := 0; i < len(raw); i += 4 {
		w := binary.BigEndian.Uint32(raw[i:])
		binary.NativeEndian.PutUint32(raw[i:], w)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// socketHolder returns the one process holding socket inode among its
// descriptors, or 0 when none or several do.
func socketHolder(inode uint64) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	found := 0
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + fd.Name()); err == nil && link == want {
				if found != 0 && found != pid {
					return 0
				}
				found = pid
				break
			}
		}
	}
	return found
}
