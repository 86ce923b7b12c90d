package unix

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// socketTable is one of the kernel's socket tables.
type socketTable struct {
	name    string // under /proc/net
	family  uint8  // for sock_diag
	ipproto uint8
	proto   broker.Protocol
}

// socketTables are the tables that hold ports, IPv4 before IPv6.
var socketTables = []socketTable{
	{"tcp", xunix.AF_INET, xunix.IPPROTO_TCP, broker.TCP},
	{"tcp6", xunix.AF_INET6, xunix.IPPROTO_TCP, broker.TCP},
	{"udp", xunix.AF_INET, xunix.IPPROTO_UDP, broker.UDP},
	{"udp6", xunix.AF_INET6, xunix.IPPROTO_UDP, broker.UDP},
}

// heldSocket is a socket that holds the port being asked about.
type heldSocket struct {
	proto broker.Protocol
	addr  string
	// table is the index in socketTables of the table it was found in.
	table int
}

func (t procTable) holders(port uint16, proto broker.Protocol) ([]broker.ProcessInfo, error) {
	socks, err := boundSockets(port, proto)
	if err != nil || len(socks) == 0 {
		return nil, err
	}
	owners, err := socketOwners(socks)
	if err != nil {
		return nil, err
	}
	infos := make([]broker.ProcessInfo, 0, len(owners))
	for _, o := range owners {
		info, err := t.inspect(o.pid)
		if errors.Is(err, broker.ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("holders of port %d: %w", port, err)
		}
		info.LocalAddr, info.Protocol = o.sock.addr, o.sock.proto
		infos = append(infos, info)
	}
	return infos, nil
}

// boundSockets returns the inodes of the sockets that hold port for proto:
// TCP listeners and every UDP socket bound to it. (A TCP socket bound but
// neither listening nor connected is in no table the kernel shows.)
func boundSockets(port uint16, proto broker.Protocol) (map[uint64]heldSocket, error) {
	socks := make(map[uint64]heldSocket)
	buf := make([]byte, diagBufferSize)
	for i, table := range socketTables {
		if table.proto == broker.TCP && !proto.HasTCP() || table.proto == broker.UDP && !proto.HasUDP() {
			continue
		}
		rows, err := listSockets(table, port, buf)
		if err != nil {
			return nil, fmt.Errorf("holders of port %d: %w", port, err)
		}
		for _, r := range rows {
			// Inode 0 is a socket no file refers to any more (TIME_WAIT).
			if r.inode == 0 || table.proto == broker.TCP && r.state != tcpListen {
				continue
			}
			if _, dup := socks[r.inode]; !dup {
				socks[r.inode] = heldSocket{proto: table.proto, addr: r.local.String(), table: i}
			}
		}
	}
	return socks, nil
}

// listSockets returns the sockets of table with local port port that may
// hold it (for TCP, at least the listeners), from sock_diag or, where the
// kernel lacks or refuses it (no udp_diag module, a sandbox), from
// /proc/net. buf is for diagSockets.
func listSockets(table socketTable, port uint16, buf []byte) ([]netSocket, error) {
	states := ^uint32(0)
	if table.proto == broker.TCP {
		states = 1 << tcpListen
	}
	if socks, err := diagSockets(table, states, port, buf); err == nil {
		return socks, nil
	}
	return procNetSockets(table, port)
}

// procNetSockets returns the sockets of table with local port port from
// /proc/net, in every state.
func procNetSockets(table socketTable, port uint16) ([]netSocket, error) {
	path := "/proc/net/" + table.name
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no IPv6 in this kernel
	}
	if err != nil {
		return nil, err
	}
	socks, err := parseProcNet(data, binary.NativeEndian, port)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return socks, nil
}

// socketOwner is a process holding one of the sockets asked about.
type socketOwner struct {
	pid   int
	sock  heldSocket
	inode uint64
}

// before reports whether o comes before p as the socket a process is
// reported with: IPv4 before IPv6, then the lower inode, which in practice
// is the socket opened first.
func (o socketOwner) before(p socketOwner) bool {
	return cmp.Or(cmp.Compare(o.sock.table, p.sock.table), cmp.Compare(o.inode, p.inode)) < 0
}

// socketOwners finds the processes with a descriptor for one of socks, by
// reading every /proc/PID/fd once. It returns one owner per process and
// protocol, with the socket that comes first by socketOwner.before,
// ordered by PID then protocol. Processes this user may not read
// are skipped.
func socketOwners(socks map[uint64]heldSocket) ([]socketOwner, error) {
	pids, err := procPIDs()
	if err != nil {
		return nil, err
	}
	type key struct {
		pid   int
		proto broker.Protocol
	}
	found := make(map[key]socketOwner)
	var link [64]byte
	for _, pid := range pids {
		forEachSocketFD(pid, link[:], func(inode uint64) {
			s, ok := socks[inode]
			if !ok {
				return
			}
			o := socketOwner{pid: pid, sock: s, inode: inode}
			k := key{pid, s.proto}
			if prev, ok := found[k]; !ok || o.before(prev) {
				found[k] = o
			}
		})
	}
	owners := make([]socketOwner, 0, len(found))
	for _, o := range found {
		owners = append(owners, o)
	}
	slices.SortFunc(owners, func(a, b socketOwner) int {
		return cmp.Or(cmp.Compare(a.pid, b.pid), cmp.Compare(a.sock.proto, b.sock.proto))
	})
	return owners, nil
}

// forEachSocketFD calls f with the inode of each socket process pid has a
// descriptor for. A process that exits or may not be read yields none.
// link is scratch space for one symlink target.
func forEachSocketFD(pid int, link []byte, f func(inode uint64)) {
	dir, err := xunix.Open("/proc/"+strconv.Itoa(pid)+"/fd", xunix.O_RDONLY|xunix.O_DIRECTORY|xunix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(dir), "fd")
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			n, err := xunix.Readlinkat(dir, name, link)
			if err != nil {
				continue
			}
			if inode, ok := socketInode(link[:n]); ok {
				f(inode)
			}
		}
		if err != nil {
			return
		}
	}
}

// socketInode parses a descriptor's link "socket:[INODE]".
func socketInode(link []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok {
		return 0, false
	}
	rest, ok = bytes.CutSuffix(rest, []byte("]"))
	if !ok {
		return 0, false
	}
	return parseDecimal(rest)
}
