package windows

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/portbroker/portbroker/broker"
)

// tableBuilder writes owner tables the way iphlpapi lays them out.
type tableBuilder struct{ rows [][]byte }

func (tb *tableBuilder) bytes(extra int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(tb.rows)))
	for _, r := range tb.rows {
		b = append(b, r...)
	}
	return append(b, make([]byte, extra)...)
}

func dword(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// portDword puts port in network order in the low 16 bits of a DWORD.
func portDword(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }

func (tb *tableBuilder) tcp4(state uint32, local netip.AddrPort, pid uint32) {
	a := local.Addr().As4()
	r := dword(state)
	r = append(r, a[:]...)
	r = append(r, portDword(local.Port())...)
	r = append(r, 10, 0, 0, 9)       // remote addr
	r = append(r, portDword(443)...) // remote port
	tb.rows = append(tb.rows, append(r, dword(pid)...))
}

func (tb *tableBuilder) tcp6(state uint32, local netip.AddrPort, scope, pid uint32) {
	a := local.Addr().As16()
	r := append([]byte{}, a[:]...)
	r = append(r, dword(scope)...)
	r = append(r, portDword(local.Port())...)
	r = append(r, make([]byte, 16)...) // remote addr
	r = append(r, dword(0)...)         // remote scope
	r = append(r, portDword(0)...)     // remote port
	r = append(r, dword(state)...)
	tb.rows = append(tb.rows, append(r, dword(pid)...))
}

func (tb *tableBuilder) udp4(local netip.AddrPort, pid uint32) {
	a := local.Addr().As4()
	r := append([]byte{}, a[:]...)
	r = append(r, portDword(local.Port())...)
	tb.rows = append(tb.rows, append(r, dword(pid)...))
}

func (tb *tableBuilder) udp6(local netip.AddrPort, scope, pid uint32) {
	a := local.Addr().As16()
	r := append([]byte{}, a[:]...)
	r = append(r, dword(scope)...)
	r = append(r, portDword(local.Port())...)
	tb.rows = append(tb.rows, append(r, dword(pid)...))
}

var ap = netip.MustParseAddrPort

func TestDecodeTCPTable(t *testing.T) {
	var t4 tableBuilder
	t4.tcp4(tcpStateListen, ap("0.0.0.0:8000"), 4242)
	t4.tcp4(5, ap("192.168.1.20:51000"), 17) // ESTABLISHED
	t4.tcp4(tcpStateListen, ap("127.0.0.1:65535"), 4)
	var t6 tableBuilder
	t6.tcp6(tcpStateListen, ap("[::]:8000"), 0, 4242)
	t6.tcp6(tcpStateListen, ap("[fe80::1]:9000"), 7, 99)
	t6.tcp6(tcpStateListen, ap("[::1]:1"), 4096, 0)

	tests := []struct {
		name string
		b    []byte
		v6   bool
		want []socketRow
	}{
		{"ipv4", t4.bytes(0), false, []socketRow{
			{Protocol: broker.TCP, Local: ap("0.0.0.0:8000"), State: tcpStateListen, PID: 4242},
			{Protocol: broker.TCP, Local: ap("192.168.1.20:51000"), State: 5, PID: 17},
			{Protocol: broker.TCP, Local: ap("127.0.0.1:65535"), State: tcpStateListen, PID: 4},
		}},
		{"ipv4 with slack", t4.bytes(100), false, []socketRow{
			{Protocol: broker.TCP, Local: ap("0.0.0.0:8000"), State: tcpStateListen, PID: 4242},
			{Protocol: broker.TCP, Local: ap("192.168.1.20:51000"), State: 5, PID: 17},
			{Protocol: broker.TCP, Local: ap("127.0.0.1:65535"), State: tcpStateListen, PID: 4},
		}},
		{"ipv6", t6.bytes(3), true, []socketRow{
			{Protocol: broker.TCP, Local: ap("[::]:8000"), State: tcpStateListen, PID: 4242},
			{Protocol: broker.TCP, Local: ap("[fe80::1%7]:9000"), State: tcpStateListen, PID: 99},
			// Only link-local addresses take the scope as their zone.
			{Protocol: broker.TCP, Local: ap("[::1]:1"), State: tcpStateListen},
		}},
		{"empty", (&tableBuilder{}).bytes(0), false, []socketRow{}},
		// Captured under Wine 8.0: a listener of another process on
		// 0.0.0.0:2024 and ours on 127.0.0.1:38123, both with owner PID 0.
		{"wine ipv4", wineTable(t, "tcp4"), false, []socketRow{
			{Protocol: broker.TCP, Local: ap("0.0.0.0:2024"), State: tcpStateListen},
			{Protocol: broker.TCP, Local: ap("127.0.0.1:38123"), State: tcpStateListen},
		}},
		{"wine ipv6", wineTable(t, "tcp6"), true, []socketRow{
			{Protocol: broker.TCP, Local: ap("[::1]:38124"), State: tcpStateListen},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeTCPTable(tt.b, tt.v6)
			if err != nil {
				t.Fatal(err)
			}
			// Remote ends have their own test, TestConnOwner.
			ignoreRemote := cmpopts.IgnoreFields(socketRow{}, "Remote")
			if diff := cmp.Diff(tt.want, got, ignoreRemote, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeUDPTable(t *testing.T) {
	var u4 tableBuilder
	u4.udp4(ap("0.0.0.0:5353"), 1200)
	u4.udp4(ap("127.0.0.1:8000"), 0)
	var u6 tableBuilder
	u6.udp6(ap("[::]:5353"), 0, 1200)
	u6.udp6(ap("[fe80::abcd]:546"), 12, 1300)

	tests := []struct {
		name string
		b    []byte
		v6   bool
		want []socketRow
	}{
		{"ipv4", u4.bytes(0), false, []socketRow{
			{Protocol: broker.UDP, Local: ap("0.0.0.0:5353"), PID: 1200},
			{Protocol: broker.UDP, Local: ap("127.0.0.1:8000")},
		}},
		{"ipv6", u6.bytes(1), true, []socketRow{
			{Protocol: broker.UDP, Local: ap("[::]:5353"), PID: 1200},
			{Protocol: broker.UDP, Local: ap("[fe80::abcd%12]:546"), PID: 1300},
		}},
		// Captured under Wine 8.0. It wrote the capturing process's own
		// PID, 32, into the IPv6 row, but not reliably: other runs give 0.
		{"wine ipv4", wineTable(t, "udp4"), false, []socketRow{
			{Protocol: broker.UDP, Local: ap("0.0.0.0:38125")},
		}},
		{"wine ipv6", wineTable(t, "udp6"), true, []socketRow{
			{Protocol: broker.UDP, Local: ap("[::]:38126"), PID: 32},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeUDPTable(tt.b, tt.v6)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeTableErrors(t *testing.T) {
	var t4 tableBuilder
	t4.tcp4(tcpStateListen, ap("0.0.0.0:8000"), 1)
	t4.tcp4(tcpStateListen, ap("0.0.0.0:8001"), 1)
	full := t4.bytes(0)
	tests := []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"nil", nil, "0 bytes, too short for the row count"},
		{"three bytes", []byte{1, 0, 0}, "3 bytes, too short"},
		{"truncated row", full[:len(full)-1], "2 rows need 52 bytes, have 51"},
		{"huge count", []byte{0xff, 0xff, 0xff, 0xff, 0}, "4294967295 rows need 103079215084 bytes, have 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := decodeTCPTable(tt.b, false)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decodeTCPTable = %v, %v; want an error containing %q", rows, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "tcp4 owner table: ") {
				t.Errorf("error %q does not name the table", err)
			}
		})
	}
}

func TestHoldsPort(t *testing.T) {
	listen := socketRow{Protocol: broker.TCP, Local: ap("0.0.0.0:8000"), State: tcpStateListen}
	established := socketRow{Protocol: broker.TCP, Local: ap("10.0.0.1:8000"), State: 5}
	udp := socketRow{Protocol: broker.UDP, Local: ap("[::]:8000")}
	tests := []struct {
		row   socketRow
		port  uint16
		proto broker.Protocol
		want  bool
	}{
		{listen, 8000, broker.TCP, true},
		{listen, 8000, broker.TCPUDP, true},
		{listen, 8000, broker.UDP, false},
		{listen, 8001, broker.TCP, false},
		{established, 8000, broker.TCP, false},
		{udp, 8000, broker.UDP, true},
		{udp, 8000, broker.TCPUDP, true},
		{udp, 8000, broker.TCP, false},
		{socketRow{Local: ap("0.0.0.0:8000")}, 8000, broker.TCPUDP, false},
	}
	for _, tt := range tests {
		if got := tt.row.holdsPort(tt.port, tt.proto); got != tt.want {
			t.Errorf("%+v holdsPort(%d, %v) = %v, want %v", tt.row, tt.port, tt.proto, got, tt.want)
		}
	}
}

func wineTable(t testing.TB, name string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimSpace(fixture(t, "ownertable-wine-"+name+".hex")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeTCPTable(f *testing.F) {
	for _, name := range []string{"tcp4", "tcp6"} {
		f.Add(wineTable(f, name), name == "tcp6")
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f}, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		rows, err := decodeTCPTable(b, v6)
		checkDecoded(t, b, v6, tcp4RowSize, tcp6RowSize, rows, err)
	})
}

func FuzzDecodeUDPTable(f *testing.F) {
	for _, name := range []string{"udp4", "udp6"} {
		f.Add(wineTable(f, name), name == "udp6")
	}
	f.Add([]byte{1, 0, 0, 0, 1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		rows, err := decodeUDPTable(b, v6)
		checkDecoded(t, b, v6, udp4RowSize, udp6RowSize, rows, err)
	})
}

// checkDecoded checks that a decode succeeded exactly when the buffer held
// the rows it announced.
func checkDecoded(t *testing.T, b []byte, v6 bool, size4, size6 int, rows []socketRow, err error) {
	size := size4
	if v6 {
		size = size6
	}
	fits := len(b) >= 4 && uint64(len(b)) >= 4+uint64(binary.LittleEndian.Uint32(b))*uint64(size)
	switch {
	case fits && err != nil:
		t.Fatalf("%d bytes holding their rows: %v", len(b), err)
	case !fits && err == nil:
		t.Fatalf("%d bytes too short for their rows: decoded %d rows", len(b), len(rows))
	case fits && len(rows) != int(binary.LittleEndian.Uint32(b)):
		t.Fatalf("decoded %d rows, table says %d", len(rows), binary.LittleEndian.Uint32(b))
	}
}
