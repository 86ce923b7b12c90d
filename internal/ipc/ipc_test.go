package ipc

import (
	"errors"
	"net"
	"path"
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in          string
		network     string
		address     string
		errContains string // empty: success
	}{
		{in: "unix:///run/user/1000/portbroker/portbroker.sock", network: "unix", address: "/run/user/1000/portbroker/portbroker.sock"},
		{in: "unix:///x.sock", network: "unix", address: "/x.sock"},
		{in: "tcp://127.0.0.1:7000", network: "tcp", address: "127.0.0.1:7000"},
		{in: "tcp://127.1.2.3:7000", network: "tcp", address: "127.1.2.3:7000"},
		{in: "tcp://[::1]:7000", network: "tcp", address: "[::1]:7000"},
		{in: "tcp://[::ffff:127.0.0.1]:7000", network: "tcp", address: "127.0.0.1:7000"},
		{in: "tcp://localhost:7000", network: "tcp", address: "localhost:7000"},
		{in: "tcp://LocalHost:0", network: "tcp", address: "localhost:0"},
		{in: "tcp://127.0.0.1:007", network: "tcp", address: "127.0.0.1:7"},
		{in: "npipe:////./pipe/portbroker-alice", network: "npipe", address: `\\.\pipe\portbroker-alice`},
		{in: "npipe:////./pipe/a/b", network: "npipe", address: `\\.\pipe\a\b`},

		{in: "", errContains: "address is empty"},
		{in: "/run/x.sock", errContains: "missing scheme"},
		{in: "unix:/x.sock", errContains: "missing scheme"},
		{in: "http://127.0.0.1:80", errContains: `unknown scheme "http"`},
		{in: "unix://", errContains: "socket path is empty"},
		{in: "unix://x.sock", errContains: `socket path "x.sock" is not absolute`},
		{in: "unix://./x.sock", errContains: "is not absolute"},
		{in: "unix:///run/", errContains: "names a directory"},
		{in: "unix:///x\x00.sock", errContains: "NUL"},
		{in: "tcp://0.0.0.0:7000", errContains: `host "0.0.0.0" is not loopback`},
		{in: "tcp://10.0.0.1:7000", errContains: `host "10.0.0.1" is not loopback`},
		{in: "tcp://[::]:7000", errContains: "is not loopback"},
		{in: "tcp://[fe80::1%eth0]:7000", errContains: "is not loopback"},
		{in: "tcp://[::1%lo]:7000", errContains: "is not loopback"},
		{in: "tcp://example.com:7000", errContains: `host "example.com" is not loopback`},
		{in: "tcp://:7000", errContains: `host "" is not loopback`},
		{in: "tcp://127.0.0.1", errContains: "want tcp://127.0.0.1:PORT"},
		{in: "tcp://127.0.0.1:", errContains: `port "": must be a number from 0 to 65535`},
		{in: "tcp://127.0.0.1:65536", errContains: "must be a number from 0 to 65535"},
		{in: "tcp://127.0.0.1:-1", errContains: "must be a number"},
		{in: "tcp://127.0.0.1:80/x", errContains: "must be a number"},
		{in: "npipe://./pipe/x", errContains: "want npipe:////./pipe/NAME"},
		{in: "npipe:////server/pipe/x", errContains: "local pipes only"},
		{in: "npipe:////./pipe/", errContains: "pipe name is empty"},
	}
	for _, tt := range tests {
		network, address, err := ParseAddr(tt.in)
		if tt.errContains != "" {
			if err == nil {
				t.Errorf("ParseAddr(%q) = %q, %q; want error containing %q", tt.in, network, address, tt.errContains)
				continue
			}
			if !errors.Is(err, ErrInvalidAddr) || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("ParseAddr(%q) error = %q; want ErrInvalidAddr containing %q", tt.in, err, tt.errContains)
			}
			continue
		}
		if err != nil || network != tt.network || address != tt.address {
			t.Errorf("ParseAddr(%q) = %q, %q, %v; want %q, %q", tt.in, network, address, err, tt.network, tt.address)
		}
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"unix:///a/b.sock", "tcp://127.0.0.1:80", "tcp://[::1]:0", "tcp://localhost:1",
		"npipe:////./pipe/x", "tcp://[::ffff:127.0.0.1]:9", "unix://", "tcp://1.2.3.4:5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, address, err := ParseAddr(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddr) {
				t.Fatalf("ParseAddr(%q) error %v does not match ErrInvalidAddr", s, err)
			}
			return
		}
		switch network {
		case NetworkUnix:
			if !path.IsAbs(address) {
				t.Fatalf("ParseAddr(%q): unix path %q is not absolute", s, address)
			}
		case NetworkTCP:
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				t.Fatalf("ParseAddr(%q): tcp address %q: %v", s, address, err)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				t.Fatalf("ParseAddr(%q): tcp host %q is not loopback", s, host)
			}
		case NetworkPipe:
			if !strings.HasPrefix(address, `\\.\pipe\`) || len(address) == len(`\\.\pipe\`) {
				t.Fatalf("ParseAddr(%q): pipe %q", s, address)
			}
		default:
			t.Fatalf("ParseAddr(%q): network %q", s, network)
		}
		// Formatting and parsing again is stable.
		n2, a2, err := ParseAddr(formatAddr(network, address))
		if err != nil || n2 != network || a2 != address {
			t.Fatalf("ParseAddr(formatAddr(ParseAddr(%q))) = %q, %q, %v; want %q, %q", s, n2, a2, err, network, address)
		}
	})
}
