//go:build linux || darwin

package unix

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

// holdersOf returns the entries of Holders(port, proto) for pid.
func holdersOf(t testing.TB, h *Host, port uint16, proto broker.Protocol, pid int) []broker.ProcessInfo {
	t.Helper()
	all, err := h.Holders(port, proto)
	if err != nil {
		t.Fatalf("Holders(%d, %v): %v", port, proto, err)
	}
	var mine []broker.ProcessInfo
	for _, info := range all {
		if info.PID == pid {
			mine = append(mine, info)
		}
	}
	return mine
}

func TestHoldersChild(t *testing.T) {
	tests := []struct {
		network, addr string
		ipv6          bool
		proto         broker.Protocol
		wantHost      string
	}{
		{"tcp4", "127.0.0.1:0", false, broker.TCP, "127.0.0.1"},
		{"tcp4", "0.0.0.0:0", false, broker.TCP, "0.0.0.0"},
		{"tcp6", "[::1]:0", true, broker.TCP, "[::1]"},
		{"tcp", ":0", true, broker.TCP, "[::]"}, // dual-stack
		{"udp4", "127.0.0.1:0", false, broker.UDP, "127.0.0.1"},
		{"udp6", "[::1]:0", true, broker.UDP, "[::1]"},
	}
	h := New()
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr, func(t *testing.T) {
			if tt.ipv6 && !haveIPv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			c, port := listenChild(t, tt.network, tt.addr)
			want := fmt.Sprintf("%s:%d", tt.wantHost, port)
			for _, asked := range []broker.Protocol{tt.proto, broker.TCPUDP} {
				got := holdersOf(t, h, port, asked, c.pid())
				if len(got) != 1 {
					t.Fatalf("Holders(%d, %v) lists the child %d times: %+v; want once", port, asked, len(got), got)
				}
				info := got[0]
				if info.LocalAddr != want || info.Protocol != tt.proto {
					t.Errorf("Holders(%d, %v): LocalAddr, Protocol = %q, %v; want %q, %v", port, asked, info.LocalAddr, info.Protocol, want, tt.proto)
				}
				if !info.Same(c.lookup(t, h)) || info.PPID != os.Getpid() || !slices.Equal(info.Cmdline, c.cmd.Args) {
					t.Errorf("Holders(%d, %v) = %+v; want the child %d, parent %d, args %q", port, asked, info, c.pid(), os.Getpid(), c.cmd.Args)
				}
			}
			other := broker.UDP
			if tt.proto == broker.UDP {
				other = broker.TCP
			}
			if got := holdersOf(t, h, port, other, c.pid()); len(got) != 0 {
				t.Errorf("Holders(%d, %v) = %+v; want nothing from a %v socket", port, other, got, tt.proto)
			}
		})
	}
}

// A process holding a port on several sockets is listed once per
// protocol, with its IPv4 address.
func TestHoldersSeveralSockets(t *testing.T) {
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	h := New()
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	port := uint16(ln6.Addr().(*net.TCPAddr).Port)
	ln4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("port %d taken on IPv4: %v", port, err)
	}
	defer ln4.Close()
	udp, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("port %d taken on UDP: %v", port, err)
	}
	defer udp.Close()

	got := holdersOf(t, h, port, broker.TCPUDP, os.Getpid())
	var summary []string
	for _, info := range got {
		summary = append(summary, fmt.Sprintf("%v %s", info.Protocol, info.LocalAddr))
	}
	want := []string{
		fmt.Sprintf("tcp 127.0.0.1:%d", port),
		fmt.Sprintf("udp 127.0.0.1:%d", port),
	}
	if !slices.Equal(summary, want) {
		t.Errorf("Holders(%d, tcp+udp) for this test = %q; want %q", port, summary, want)
	}
}

// The lsof path macOS takes finds the same holders, wherever lsof is
// installed.
func TestHoldersLsof(t *testing.T) {
	if _, err := exec.LookPath("lsof"); err != nil {
		t.Skip("no lsof")
	}
	tcp, tcpPort := listenChild(t, "tcp4", "127.0.0.1:0")
	udp, udpPort := listenChild(t, "udp4", "0.0.0.0:0")
	tests := []struct {
		c     *child
		port  uint16
		proto broker.Protocol
		want  string
	}{
		{tcp, tcpPort, broker.TCP, fmt.Sprintf("tcp 127.0.0.1:%d", tcpPort)},
		{udp, udpPort, broker.UDP, fmt.Sprintf("udp 0.0.0.0:%d", udpPort)},
	}
	for _, tt := range tests {
		for _, asked := range []broker.Protocol{tt.proto, broker.TCPUDP} {
			out, err := runLsof(tt.port, asked)
			if err != nil {
				t.Fatalf("runLsof(%d, %v): %v", tt.port, asked, err)
			}
			socks, err := parseLsof(out)
			if err != nil {
				t.Fatalf("parseLsof(%q): %v", out, err)
			}
			var got []string
			for _, s := range lsofHolders(socks, tt.port) {
				if s.pid == tt.c.pid() {
					got = append(got, fmt.Sprintf("%v %v", s.proto, s.local))
				}
			}
			if !slices.Equal(got, []string{tt.want}) {
				t.Errorf("lsof holders of %d (%v) for child %d = %q; want %q", tt.port, asked, tt.c.pid(), got, tt.want)
			}
		}
	}
	out, err := runLsof(freePort(t), broker.TCPUDP)
	if err != nil || len(out) != 0 {
		t.Errorf("runLsof(a free port) = %q, %v; want nothing", out, err)
	}
}

func TestHoldersFree(t *testing.T) {
	port := freePort(t)
	got, err := New().Holders(port, broker.TCPUDP)
	if err != nil || len(got) != 0 {
		t.Errorf("Holders(%d) of a closed listener's port = %+v, %v; want none", port, got, err)
	}
}

func TestHoldersInvalid(t *testing.T) {
	h := New()
	tests := []struct {
		port  uint16
		proto broker.Protocol
		field string
	}{
		{0, broker.TCP, "port"},
		{8000, 0, "protocol"},
		{8000, broker.TCPUDP + 1, "protocol"},
	}
	for _, tt := range tests {
		_, err := h.Holders(tt.port, tt.proto)
		var fe *broker.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Holders(%d, %v) = %v; want a FieldError for %s", tt.port, tt.proto, err, tt.field)
		}
	}
}

// BenchmarkHolders finds this process holding a TCP port; the scan of
// every process's descriptors dominates.
func BenchmarkHolders(b *testing.B) {
	h := New()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	b.ReportAllocs()
	for b.Loop() {
		got, err := h.Holders(port, broker.TCP)
		if err != nil || len(got) != 1 {
			b.Fatalf("Holders(%d) = %+v, %v; want this process", port, got, err)
		}
	}
}
