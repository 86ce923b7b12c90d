package windows

import (
	"errors"
	"net"
	"os"
	"testing"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

func TestHoldersTCP(t *testing.T) {
	h := New()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	inUse, err := h.PortInUse(port, broker.TCP)
	if err != nil || !inUse {
		t.Fatalf("PortInUse(%d, tcp) = %v, %v; want true", port, inUse, err)
	}
	if inUse, err := h.PortInUse(port, broker.UDP); err != nil || inUse {
		t.Errorf("PortInUse(%d, udp) = %v, %v; want false", port, inUse, err)
	}
	holders, err := h.Holders(port, broker.TCPUDP)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfHolds(t, holders, "127.0.0.1", port, broker.TCP)

	ln.Close()
	if inUse, err := h.PortInUse(port, broker.TCP); err != nil || inUse {
		t.Errorf("PortInUse(%d, tcp) after close = %v, %v; want false", port, inUse, err)
	}
}

func TestHoldersUDP(t *testing.T) {
	h := New()
	if err := startWinsock(); err != nil {
		t.Fatal(err)
	}
	s, err := xwin.WSASocket(xwin.AF_INET6, xwin.SOCK_DGRAM, xwin.IPPROTO_UDP, nil, 0, xwin.WSA_FLAG_NO_HANDLE_INHERIT)
	if err != nil {
		t.Skipf("no IPv6 UDP socket: %v", err)
	}
	defer xwin.Closesocket(s)
	if err := xwin.Bind(s, &xwin.SockaddrInet6{Addr: [16]byte{15: 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := xwin.Getsockname(s)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(sa.(*xwin.SockaddrInet6).Port)

	if inUse, err := h.PortInUse(port, broker.UDP); err != nil || !inUse {
		t.Fatalf("PortInUse(%d, udp) = %v, %v; want true", port, inUse, err)
	}
	holders, err := h.Holders(port, broker.UDP)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfHolds(t, holders, "::1", port, broker.UDP)
	if holders, err := h.Holders(port, broker.TCP); err != nil || len(holders) != 0 {
		t.Errorf("Holders(%d, tcp) = %+v, %v; want none", port, holders, err)
	}
}

func checkSelfHolds(t *testing.T, holders []broker.ProcessInfo, addr string, port uint16, proto broker.Protocol) {
	t.Helper()
	self := lookup(t, os.Getpid())
	if len(holders) != 1 {
		t.Fatalf("holders of %d/%v = %+v, want this process only", port, proto, holders)
	}
	got := holders[0]
	want := (&net.TCPAddr{IP: net.ParseIP(addr), Port: int(port)}).String()
	if !got.Same(self) || got.User != self.User || got.LocalAddr != want || got.Protocol != proto {
		t.Errorf("holder %+v; want %v with %s over %v", got, self, want, proto)
	}
}

func TestHoldersBadProtocol(t *testing.T) {
	if _, err := New().Holders(80, 0); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("Holders(80, 0) = %v, want ErrInvalid", err)
	}
	if _, err := New().PortInUse(80, 9); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("PortInUse(80, 9) = %v, want ErrInvalid", err)
	}
}
