package windows

import (
	"net/netip"
	"testing"
)

// TestConnOwner decodes the remote ends of connected TCP rows and finds a
// connection's owner by both of its ends, never a listener or a
// connection that shares only one end.
func TestConnOwner(t *testing.T) {
	var t4 tableBuilder
	t4.tcp4(tcpStateListen, ap("127.0.0.1:443"), 7) // remote 10.0.0.9:443 in the builder
	t4.rows = append(t4.rows, connRow4(ap("127.0.0.1:51000"), ap("127.0.0.1:8000"), 4242))
	t4.rows = append(t4.rows, connRow4(ap("127.0.0.1:8000"), ap("127.0.0.1:51000"), 99))
	t4.rows = append(t4.rows, connRow4(ap("127.0.0.1:51001"), ap("127.0.0.1:8000"), 17))
	rows, err := decodeTCPTable(t4.bytes(0), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rows[1].Remote; got != ap("127.0.0.1:8000") {
		t.Fatalf("remote end of row 1 = %v, want 127.0.0.1:8000", got)
	}
	for _, tt := range []struct {
		local, remote string
		pid           uint32
		ok            bool
	}{
		{"127.0.0.1:51000", "127.0.0.1:8000", 4242, true},
		{"127.0.0.1:8000", "127.0.0.1:51000", 99, true},
		{"127.0.0.1:51001", "127.0.0.1:8000", 17, true},
		{"[::ffff:127.0.0.1]:51000", "[::ffff:127.0.0.1]:8000", 4242, true},
		{"127.0.0.1:51002", "127.0.0.1:8000", 0, false},
		// The listener's remote end in the table is not a peer.
		{"127.0.0.1:443", "10.0.0.9:443", 0, false},
	} {
		pid, ok := connOwner(rows, ap(tt.local), ap(tt.remote))
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("connOwner(%s, %s) = %d, %v; want %d, %v", tt.local, tt.remote, pid, ok, tt.pid, tt.ok)
		}
	}
}

// connRow4 is an ESTABLISHED MIB_TCPROW_OWNER_PID.
func connRow4(local, remote netip.AddrPort, pid uint32) []byte {
	l, r := local.Addr().As4(), remote.Addr().As4()
	b := dword(5)
	b = append(b, l[:]...)
	b = append(b, portDword(local.Port())...)
	b = append(b, r[:]...)
	b = append(b, portDword(remote.Port())...)
	return append(b, dword(pid)...)
}
