//go:build unix

package unix

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

func TestParseLsof(t *testing.T) {
	// As lsof 4.95 prints "lsof -nPw -FpftPnT -iTCP:8000 -iUDP:8000"; the
	// IPv6 link-local address is as macOS writes it.
	const out = `p512
f5
tIPv4
PTCP
n127.0.0.1:8000
TST=LISTEN
TQR=0
TQS=0
f6
tIPv6
PTCP
n*:8000
TST=LISTEN
f7
tIPv4
PTCP
n127.0.0.1:8000->127.0.0.1:38346
TST=ESTABLISHED
p777
f3
tIPv4
PUDP
n*:8000
TQR=0
TQS=0
f9
tIPv6
PUDP
n[::1]:9000->[::1]:8000
f10
tunix
n/tmp/x.sock
p901
f4
tIPv6
PTCP
n[fe80::1%lo0]:8000
TST=LISTEN
`
	sock := func(pid int, proto broker.Protocol, addr string, ipv6 bool, state string) lsofSocket {
		return lsofSocket{pid: pid, proto: proto, local: netip.MustParseAddrPort(addr), ipv6: ipv6, state: state}
	}
	want := []lsofSocket{
		sock(512, broker.TCP, "127.0.0.1:8000", false, "LISTEN"),
		sock(512, broker.TCP, "[::]:8000", true, "LISTEN"),
		sock(512, broker.TCP, "127.0.0.1:8000", false, "ESTABLISHED"),
		sock(777, broker.UDP, "0.0.0.0:8000", false, ""),
		sock(777, broker.UDP, "[::1]:9000", true, ""),
		sock(901, broker.TCP, "[fe80::1%lo0]:8000", true, "LISTEN"),
	}
	got, err := parseLsof([]byte(out))
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseLsof = %v, %v; want %v", got, err, want)
	}

	// Holders: listeners and UDP sockets on the port, once per process and
	// protocol, IPv4 first.
	wantHolders := []lsofSocket{want[0], want[3], want[5]}
	if got := lsofHolders(got, 8000); !slices.Equal(got, wantHolders) {
		t.Errorf("lsofHolders = %v; want %v", got, wantHolders)
	}
}

func TestLsofHolders(t *testing.T) {
	sock := func(pid int, proto broker.Protocol, addr string, state string) lsofSocket {
		ap := netip.MustParseAddrPort(addr)
		return lsofSocket{pid: pid, proto: proto, local: ap, ipv6: ap.Addr().Is6(), state: state}
	}
	tests := []struct {
		name string
		in   []lsofSocket
		want []lsofSocket
	}{
		{"none", nil, nil},
		{
			"IPv4 preferred, then first",
			[]lsofSocket{sock(9, broker.TCP, "[::1]:80", "LISTEN"), sock(9, broker.TCP, "[::]:80", "LISTEN"), sock(9, broker.TCP, "10.0.0.1:80", "LISTEN"), sock(9, broker.TCP, "127.0.0.1:80", "LISTEN")},
			[]lsofSocket{sock(9, broker.TCP, "10.0.0.1:80", "LISTEN")},
		},
		{
			"ordered by pid then protocol",
			[]lsofSocket{sock(9, broker.UDP, "0.0.0.0:80", ""), sock(3, broker.TCP, "0.0.0.0:80", "LISTEN"), sock(9, broker.TCP, "0.0.0.0:80", "LISTEN")},
			[]lsofSocket{sock(3, broker.TCP, "0.0.0.0:80", "LISTEN"), sock(9, broker.TCP, "0.0.0.0:80", "LISTEN"), sock(9, broker.UDP, "0.0.0.0:80", "")},
		},
		{
			"other ports and TCP states left out",
			[]lsofSocket{sock(9, broker.UDP, "0.0.0.0:81", ""), sock(9, broker.TCP, "0.0.0.0:80", "CLOSE_WAIT"), sock(9, broker.TCP, "0.0.0.0:80", "")},
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lsofHolders(tt.in, 80); !slices.Equal(got, tt.want) {
				t.Errorf("lsofHolders = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestParseLsofEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "p12\n"} {
		if got, err := parseLsof([]byte(in)); err != nil || len(got) != 0 {
			t.Errorf("parseLsof(%q) = %v, %v; want nothing", in, got, err)
		}
	}
}

func TestParseLsofErrors(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"pabc\n", `line 1: pid "abc"`},
		{"p0\n", `line 1: pid "0"`},
		{"f3\n", "line 1: file before any process"},
		{"p1\nf3\nPTCP\nn8000\n", `pid 1: address "8000": want HOST:PORT`},
		{"p1\nf3\nPTCP\nn*:http\n", `pid 1: address "*:http": port "http"`},
		{"p1\nf3\nPUDP\nn*:70000\n", `port "70000"`},
		{"p1\nf3\nPTCP\nnlocalhost:80\n", `pid 1: address "localhost:80"`},
	}
	for _, tt := range tests {
		got, err := parseLsof([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseLsof(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}
