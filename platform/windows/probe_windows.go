package windows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

// soExclusiveAddrUse is SO_EXCLUSIVEADDRUSE, defined in winsock2.h as
// ~SO_REUSEADDR; x/sys/windows does not export it.
const soExclusiveAddrUse = ^xwin.SO_REUSEADDR

// Probe binds port on the IPv4 and IPv6 wildcard addresses, listening for
// TCP and binding UDP as proto asks, with SO_EXCLUSIVEADDRUSE so that any
// other socket on the port makes it fail the way the service's bind would.
// A family the host lacks is skipped. The first failure is returned as a
// *broker.BindError that says why and what to do.
func (h *Host) Probe(port uint16, proto broker.Protocol) error {
	if port == 0 {
		return &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}
	}
	if !proto.Valid() {
		return &broker.FieldError{Field: "protocol", Rule: "must be tcp, udp or tcp+udp"}
	}
	var networks []string
	if proto.HasTCP() {
		networks = append(networks, "tcp4", "tcp6")
	}
	if proto.HasUDP() {
		networks = append(networks, "udp4", "udp6")
	}
	for _, network := range networks {
		err := bind(network, port, true)
		if err == nil || familyMissing(err) {
			continue
		}
		return h.classify(network, port, err)
	}
	return nil
}

// classify explains a failed probe. For WSAEACCES it first rereads the
// excluded ranges if they are a few seconds old, since WinNAT moves them,
// and then tries a plain bind: WSAEADDRINUSE there means a socket holds the
// port, so the exclusive bind was refused because of it.
func (h *Host) classify(network string, port uint16, err error) *broker.BindError {
	var (
		excluded []broker.PortRange
		held     bool
	)
	if errors.Is(err, wsaEACCES) {
		excluded = h.ranges.lastExcluded(context.Background(), bindRefreshAge)
		if _, in := containing(excluded, port); !in {
			held = errors.Is(bind(network, port, false), wsaEADDRINUSE)
		}
	}
	return classifyBind(network, port, err, excluded, held)
}

// bind binds port on network's wildcard address, listens when it is TCP,
// and lets it go. It uses Winsock directly: the net package needs
// SIO_UDP_CONNRESET for UDP, which Wine lacks, and a probe needs nothing
// else from it.
func bind(network string, port uint16, exclusive bool) error {
	if err := startWinsock(); err != nil {
		return fmt.Errorf("start winsock: %w", err)
	}
	family, sa := xwin.AF_INET, xwin.Sockaddr(&xwin.SockaddrInet4{Port: int(port)})
	if strings.HasSuffix(network, "6") {
		family, sa = xwin.AF_INET6, &xwin.SockaddrInet6{Port: int(port)}
	}
	typ, proto := xwin.SOCK_STREAM, xwin.IPPROTO_TCP
	if strings.HasPrefix(network, "udp") {
		typ, proto = xwin.SOCK_DGRAM, xwin.IPPROTO_UDP
	}
	s, err := xwin.WSASocket(int32(family), int32(typ), int32(proto), nil, 0, xwin.WSA_FLAG_NO_HANDLE_INHERIT)
	if err != nil {
		return fmt.Errorf("%s socket: %w", network, err)
	}
	defer xwin.Closesocket(s)
	if family == xwin.AF_INET6 {
		// Probe IPv6 on its own; IPv4 has its own probe.
		if err := xwin.SetsockoptInt(s, xwin.IPPROTO_IPV6, xwin.IPV6_V6ONLY, 1); err != nil {
			return fmt.Errorf("%s socket: set IPV6_V6ONLY: %w", network, err)
		}
	}
	if exclusive {
		if err := xwin.SetsockoptInt(s, xwin.SOL_SOCKET, soExclusiveAddrUse, 1); err != nil {
			return fmt.Errorf("%s socket: set SO_EXCLUSIVEADDRUSE: %w", network, err)
		}
	}
	if err := xwin.Bind(s, sa); err != nil {
		return fmt.Errorf("bind %s port %d: %w", network, port, err)
	}
	if typ == xwin.SOCK_STREAM {
		if err := xwin.Listen(s, 1); err != nil {
			return fmt.Errorf("listen %s port %d: %w", network, port, err)
		}
	}
	return nil
}

// startWinsock initialises Winsock once; the net package does the same
// when it is linked in, and the count is per process.
var startWinsock = sync.OnceValue(func() error {
	var d xwin.WSAData
	return xwin.WSAStartup(0x202, &d)
})

// familyMissing reports whether err says the host has no such address
// family, as when IPv6 is not installed.
func familyMissing(err error) bool {
	return errors.Is(err, wsaEAFNOSUPPORT) || errors.Is(err, wsaEPROTONOSUPPORT)
}
