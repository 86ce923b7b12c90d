//go:build linux || darwin

package unix

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

func hasIPv6(h *Host) bool {
	for _, f := range h.families() {
		if f == inet6 {
			return true
		}
	}
	return false
}

// portOf returns the port a listener or packet connection is bound to.
func portOf(t *testing.T, addr net.Addr) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// hold binds address on network and returns its port; cleanup unbinds it.
func hold(t *testing.T, network, address string) uint16 {
	t.Helper()
	var c io.Closer
	var addr net.Addr
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, address)
		if err != nil {
			t.Fatal(err)
		}
		c, addr = pc, pc.LocalAddr()
	} else {
		ln, err := net.Listen(network, address)
		if err != nil {
			t.Fatal(err)
		}
		c, addr = ln, ln.Addr()
	}
	t.Cleanup(func() { c.Close() })
	return portOf(t, addr)
}

func TestProbeHeld(t *testing.T) {
	h := New()
	tests := []struct {
		name             string
		network, address string
		ipv6             bool
		proto            broker.Protocol
		wantNetwork      string // "" for no error
	}{
		{"tcp4 wildcard", "tcp4", "0.0.0.0:0", false, broker.TCP, "tcp4"},
		{"tcp4 loopback", "tcp4", "127.0.0.1:0", false, broker.TCP, "tcp4"},
		{"tcp6 wildcard", "tcp6", "[::]:0", true, broker.TCP, "tcp6"},
		{"tcp6 loopback", "tcp6", "[::1]:0", true, broker.TCP, "tcp6"},
		{"tcp4 held, tcp+udp probe", "tcp4", "127.0.0.1:0", false, broker.TCPUDP, "tcp4"},
		{"tcp4 held, udp probe", "tcp4", "127.0.0.1:0", false, broker.UDP, ""},
		{"udp4 wildcard", "udp4", "0.0.0.0:0", false, broker.UDP, "udp4"},
		{"udp4 loopback", "udp4", "127.0.0.1:0", false, broker.UDP, "udp4"},
		{"udp6 wildcard", "udp6", "[::]:0", true, broker.UDP, "udp6"},
		{"udp4 held, tcp probe", "udp4", "127.0.0.1:0", false, broker.TCP, ""},
		{"udp6 held, tcp probe", "udp6", "[::1]:0", true, broker.TCP, ""},
		{"udp4 held, tcp+udp probe", "udp4", "127.0.0.1:0", false, broker.TCPUDP, "udp4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ipv6 && !hasIPv6(h) {
				t.Skip("no IPv6 on this host")
			}
			port := hold(t, tt.network, tt.address)
			err := h.Probe(port, tt.proto)
			if tt.wantNetwork == "" {
				if err != nil {
					t.Fatalf("Probe(%d, %v) = %v; want nil", port, tt.proto, err)
				}
				return
			}
			var be *broker.BindError
			if !errors.As(err, &be) {
				t.Fatalf("Probe(%d, %v) = %v; want a *broker.BindError", port, tt.proto, err)
			}
			if be.Class != broker.BindInUse || be.Network != tt.wantNetwork || be.Port != port {
				t.Errorf("Probe(%d, %v) = %+v; want class %v, network %s, port %d", port, tt.proto, be, broker.BindInUse, tt.wantNetwork, port)
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("Probe error %v does not match EADDRINUSE", err)
			}
			if wantFix := "brokerctl who " + strconv.Itoa(int(port)); !strings.Contains(be.Fix, wantFix) {
				t.Errorf("Fix = %q; want it to mention %q", be.Fix, wantFix)
			}
		})
	}
}

// freePort returns a port that was just free for TCP and UDP on both
// families.
func freePort(t testing.TB) uint16 {
	t.Helper()
	h := New()
	for range 20 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		n, _ := strconv.Atoi(p)
		if h.Probe(uint16(n), broker.TCPUDP) == nil {
			return uint16(n)
		}
	}
	t.Fatal("found no free port")
	return 0
}

func TestProbeFree(t *testing.T) {
	h := New()
	port := freePort(t)
	for _, proto := range []broker.Protocol{broker.TCP, broker.UDP, broker.TCPUDP} {
		if err := h.Probe(port, proto); err != nil {
			t.Errorf("Probe(%d, %v) of a free port = %v; want nil", port, proto, err)
		}
	}
	// The probes left nothing bound.
	for _, network := range []string{"tcp4", "udp4"} {
		hold(t, network, ":"+strconv.Itoa(int(port)))
	}
}

// A port whose only sockets are connections in TIME_WAIT is free to a
// server, which binds with SO_REUSEADDR, so the probe calls it free too.
func TestProbeTimeWait(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, ln.Addr())
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	// The side that closes first keeps TIME_WAIT: here the server's, on port.
	srv.Close()
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read = %v; want EOF", err)
	}
	conn.Close()

	if err := New().Probe(port, broker.TCP); err != nil {
		t.Errorf("Probe(%d) with a connection in TIME_WAIT = %v; want nil", port, err)
	}
}

// unprivilegedPortStart is the lowest port this process may bind.
func unprivilegedPortStart(t *testing.T) int {
	switch {
	case os.Geteuid() == 0:
		return 0
	case runtime.GOOS == "darwin":
		return 0 // since macOS 10.14 anyone may bind the wildcard address
	}
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProbePrivilegedPort(t *testing.T) {
	err := New().Probe(1, broker.TCP)
	if unprivilegedPortStart(t) <= 1 {
		if err != nil {
			t.Fatalf("Probe(1) with the privilege to bind it = %v; want nil", err)
		}
		return
	}
	var be *broker.BindError
	if !errors.As(err, &be) || be.Class != broker.BindPermission {
		t.Fatalf("Probe(1) without privilege = %v; want a permission BindError", err)
	}
	if !strings.Contains(be.Detail, "privileges") || be.Fix == "" {
		t.Errorf("Detail = %q, Fix = %q; want the privilege rule and a fix", be.Detail, be.Fix)
	}
}

func TestProbeInvalid(t *testing.T) {
	tests := []struct {
		name  string
		port  uint16
		proto broker.Protocol
		field string
	}{
		{"port zero", 0, broker.TCP, "port"},
		{"no protocol", 8000, 0, "protocol"},
		{"unknown protocol", 8000, 9, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Probe(tt.port, tt.proto)
			var fe *broker.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, broker.ErrInvalid) {
				t.Errorf("Probe(%d, %v) = %v; want an invalid %s", tt.port, tt.proto, err, tt.field)
			}
		})
	}
}

func TestBindError(t *testing.T) {
	limit := privilegedBelow()
	tests := []struct {
		name       string
		port       uint16
		err        error
		wantClass  broker.BindClass
		wantDetail string
		wantFix    string
	}{
		{"in use", 8000, syscall.EADDRINUSE, broker.BindInUse, "address already in use", "brokerctl who 8000"},
		{"access below the limit", limit - 1, syscall.EACCES, broker.BindPermission, "ports below " + strconv.Itoa(int(limit)) + " need privileges", "at or above"},
		{"not permitted below the limit", limit - 1, syscall.EPERM, broker.BindPermission, "need privileges", privilegeName},
		{"access above the limit", limit, syscall.EACCES, broker.BindPermission, "permission denied", "security policy"},
		{"other", 8000, syscall.EADDRNOTAVAIL, broker.BindOther, "bind: " + syscall.EADDRNOTAVAIL.Error(), "another port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if limit == 0 && tt.port == limit-1 {
				t.Skip("every port is unprivileged on this host")
			}
			be := bindError("tcp6", tt.port, "bind", tt.err)
			if be.Class != tt.wantClass || be.Network != "tcp6" || be.Port != tt.port {
				t.Errorf("bindError = %+v; want class %v on tcp6 port %d", be, tt.wantClass, tt.port)
			}
			if !strings.Contains(be.Detail, tt.wantDetail) {
				t.Errorf("Detail = %q; want it to contain %q", be.Detail, tt.wantDetail)
			}
			if !strings.Contains(be.Fix, tt.wantFix) {
				t.Errorf("Fix = %q; want it to contain %q", be.Fix, tt.wantFix)
			}
			if !errors.Is(be, tt.err) {
				t.Errorf("bindError does not wrap %v", tt.err)
			}
		})
	}
}

func BenchmarkProbe(b *testing.B) {
	h := New()
	port := freePort(b)
	for _, proto := range []broker.Protocol{broker.TCP, broker.UDP, broker.TCPUDP} {
		b.Run(proto.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Probe(port, proto); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
