package unix

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// sock_diag and /proc/net agree on real sockets of every table.
func TestDiagSocketsMatchProcNet(t *testing.T) {
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	// One port, held in every table: a TCP listener and a connection it
	// accepted (which sock_diag, asked for listeners, leaves out), and UDP
	// sockets bound and connected.
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	port := ln6.Addr().(*net.TCPAddr).Port
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	ln4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("port %d taken on IPv4: %v", port, err)
	}
	closers = append(closers, ln4.Close)
	conn, err := net.Dial("tcp4", ln4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, conn.Close)
	accepted, err := ln4.Accept()
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, accepted.Close)
	for _, network := range []string{"udp4", "udp6"} {
		host := "127.0.0.1"
		if network == "udp6" {
			host = "[::1]"
		}
		u, err := net.ListenPacket(network, fmt.Sprintf("%s:%d", host, port))
		if err != nil {
			t.Skipf("port %d taken on %s: %v", port, network, err)
		}
		closers = append(closers, u.Close)
	}

	buf := make([]byte, diagBufferSize)
	for _, table := range socketTables {
		t.Run(table.name, func(t *testing.T) {
			states := ^uint32(0)
			if table.proto == broker.TCP {
				states = 1 << tcpListen
			}
			diag, err := diagSockets(table, states, uint16(port), buf)
			if err != nil {
				t.Skipf("no sock_diag here: %v", err)
			}
			proc, err := procNetSockets(table, uint16(port))
			if err != nil {
				t.Fatal(err)
			}
			proc = slices.DeleteFunc(proc, func(s netSocket) bool { return states&(1<<s.state) == 0 })
			byInode := func(a, b netSocket) int { return cmp.Compare(a.inode, b.inode) }
			slices.SortFunc(diag, byInode)
			slices.SortFunc(proc, byInode)
			if len(diag) == 0 || !slices.Equal(diag, proc) {
				t.Errorf("port %d: sock_diag gives %v; /proc/net/%s gives %v; want the same, not empty", port, diag, table.name, proc)
			}
		})
	}
}

func TestParseInetDiagMsg(t *testing.T) {
	msg := func(family, state byte, port uint16, addr []byte, inode uint32) []byte {
		b := make([]byte, sizeofInetDiagMsg)
		b[0], b[1] = family, state
		binary.BigEndian.PutUint16(b[4:], port)
		copy(b[8:], addr)
		binary.NativeEndian.PutUint32(b[68:], inode)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		want    netSocket
		wantErr string
	}{
		{"ipv4", msg(xunix.AF_INET, tcpListen, 8000, []byte{127, 0, 0, 1}, 42), netSocket{netip.MustParseAddrPort("127.0.0.1:8000"), tcpListen, 42}, ""},
		{"ipv6", msg(xunix.AF_INET6, 7, 53, netip.MustParseAddr("::1").AsSlice(), 7), netSocket{netip.MustParseAddrPort("[::1]:53"), 7, 7}, ""},
		{"longer", append(msg(xunix.AF_INET, 1, 1, []byte{10, 0, 0, 1}, 1), 0, 0, 0, 0), netSocket{netip.MustParseAddrPort("10.0.0.1:1"), 1, 1}, ""},
		{"short", make([]byte, sizeofInetDiagMsg-1), netSocket{}, "message of 71 bytes"},
		{"family", msg(xunix.AF_UNIX, 1, 1, nil, 1), netSocket{}, "address family 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInetDiagMsg(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseInetDiagMsg = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseInetDiagMsg = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
