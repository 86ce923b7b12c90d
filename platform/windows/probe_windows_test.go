package windows

import (
	"errors"
	"net"
	"testing"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

func TestProbe(t *testing.T) {
	h := New()
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcpPort := uint16(tcp.Addr().(*net.TCPAddr).Port)
	udpPort := holdUDP(t)

	for _, tt := range []struct {
		name  string
		port  uint16
		proto broker.Protocol
	}{
		{"tcp listener", tcpPort, broker.TCP},
		{"tcp listener, tcp+udp probe", tcpPort, broker.TCPUDP},
		{"udp socket", udpPort, broker.UDP},
		{"udp socket, tcp+udp probe", udpPort, broker.TCPUDP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Probe(tt.port, tt.proto)
			var be *broker.BindError
			if !errors.As(err, &be) {
				t.Fatalf("Probe(%d, %v) = %v, want a *broker.BindError", tt.port, tt.proto, err)
			}
			if be.Class != broker.BindInUse || be.Port != tt.port || be.Fix == "" {
				t.Errorf("Probe(%d, %v) = %+v, want class in use with a fix", tt.port, tt.proto, be)
			}
		})
	}
}

// holdUDP binds a UDP socket on a loopback port until the test ends. It uses
// Winsock directly because the net package's UDP sockets fail under Wine.
func holdUDP(t *testing.T) uint16 {
	t.Helper()
	if err := startWinsock(); err != nil {
		t.Fatal(err)
	}
	s, err := xwin.WSASocket(xwin.AF_INET, xwin.SOCK_DGRAM, xwin.IPPROTO_UDP, nil, 0, xwin.WSA_FLAG_NO_HANDLE_INHERIT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xwin.Closesocket(s) })
	if err := xwin.Bind(s, &xwin.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := xwin.Getsockname(s)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(sa.(*xwin.SockaddrInet4).Port)
}

func TestProbeFree(t *testing.T) {
	// A port the OS just handed out and took back is free.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if err := New().Probe(port, broker.TCPUDP); err != nil {
		t.Errorf("Probe(%d) of a free port = %v", port, err)
	}
}

func TestProbeBadInput(t *testing.T) {
	for _, tt := range []struct {
		port  uint16
		proto broker.Protocol
		field string
	}{
		{0, broker.TCP, "port"},
		{8000, 0, "protocol"},
		{8000, broker.TCPUDP + 1, "protocol"},
	} {
		var fe *broker.FieldError
		if err := New().Probe(tt.port, tt.proto); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Probe(%d, %v) = %v, want a field error on %s", tt.port, tt.proto, err, tt.field)
		}
	}
}
