//go:build unix

package unix

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// lsof is how macOS finds port holders: the kernel's socket tables are
// reachable only through libproc, which Go cannot call without cgo, and
// every macOS has lsof. The code builds on every Unix so that its tests
// run wherever lsof is installed.

// lsofTimeout bounds one run of lsof, which can stall on a hung network
// file system.
const lsofTimeout = 10 * time.Second

// runLsof lists the TCP and UDP sockets on port, as proto asks, in lsof's
// field output. It asks for no TCP state: "-sTCP:LISTEN" would hide every
// UDP socket, so parseLsof reads the states instead.
func runLsof(port uint16, proto broker.Protocol) ([]byte, error) {
	path, err := exec.LookPath("/usr/sbin/lsof")
	if err != nil {
		if path, err = exec.LookPath("lsof"); err != nil {
			return nil, err
		}
	}
	// -n and -P: no name lookups; -w: no warnings; -i options are ORed.
	args := []string{"-nPw", "-FpftPnT"}
	if proto.HasTCP() {
		args = append(args, "-iTCP:"+strconv.Itoa(int(port)))
	}
	if proto.HasUDP() {
		args = append(args, "-iUDP:"+strconv.Itoa(int(port)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), lsofTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	// lsof exits 1, saying nothing, when one of the -i options matched
	// nothing.
	if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) && exitErr.ExitCode() == 1 && stderr.Len() == 0 {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("lsof: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// lsofSocket is one Internet socket in lsof's field output.
type lsofSocket struct {
	pid   int
	proto broker.Protocol
	local netip.AddrPort
	// ipv6 is set for a socket of type IPv6, which lsof shows even when its
	// address is "*".
	ipv6 bool
	// state is a TCP socket's state, such as "LISTEN".
	state string
}

// parseLsof parses the output of "lsof -FpftPnT" for Internet sockets:
// lines of one field each, named by their first character, a "p" line
// starting each process and an "f" line each of its files. Files other
// than TCP and UDP sockets are skipped. For a connected socket the name is
// "LOCAL->REMOTE"; only the local address is kept.
func parseLsof(out []byte) ([]lsofSocket, error) {
	var (
		socks  []lsofSocket
		pid    int
		cur    lsofSocket
		name   []byte
		inFile bool
	)
	flush := func() error {
		if !inFile || cur.proto == 0 || name == nil {
			return nil
		}
		local, _, _ := bytes.Cut(name, []byte("->"))
		ap, err := parseLsofAddr(local, cur.ipv6)
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		cur.pid, cur.local = pid, ap
		socks = append(socks, cur)
		return nil
	}
	for n := 1; len(out) > 0; n++ {
		var line []byte
		line, out, _ = bytes.Cut(out, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		field, value := line[0], line[1:]
		switch field {
		case 'p':
			if err := flush(); err != nil {
				return nil, err
			}
			p, err := strconv.ParseUint(string(value), 10, 31)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("line %d: pid %q: want a positive decimal", n, clip(value))
			}
			pid, inFile = int(p), false
		case 'f':
			if err := flush(); err != nil {
				return nil, err
			}
			if pid == 0 {
				return nil, fmt.Errorf("line %d: file before any process", n)
			}
			cur, name, inFile = lsofSocket{}, nil, true
		case 't':
			cur.ipv6 = string(value) == "IPv6"
		case 'P':
			switch string(value) {
			case "TCP":
				cur.proto = broker.TCP
			case "UDP":
				cur.proto = broker.UDP
			}
		case 'n':
			name = value
		case 'T':
			if st, ok := bytes.CutPrefix(value, []byte("ST=")); ok {
				cur.state = string(st)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return socks, nil
}

// parseLsofAddr parses lsof's HOST:PORT, where HOST is "*" for the
// wildcard address, or an IPv6 address in brackets.
func parseLsofAddr(b []byte, ipv6 bool) (netip.AddrPort, error) {
	i := bytes.LastIndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("address %q: want HOST:PORT", clip(b))
	}
	host, portText := b[:i], b[i+1:]
	port, err := strconv.ParseUint(string(portText), 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port %q: want a number from 0 to 65535", clip(b), clip(portText))
	}
	var addr netip.Addr
	switch {
	case string(host) == "*" && ipv6:
		addr = netip.IPv6Unspecified()
	case string(host) == "*":
		addr = netip.IPv4Unspecified()
	default:
		host = bytes.TrimSuffix(bytes.TrimPrefix(host, []byte("[")), []byte("]"))
		if addr, err = netip.ParseAddr(string(host)); err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q: %w", clip(b), err)
		}
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// lsofHolders picks the sockets that hold port from socks, as Holders
// reports them: TCP listeners and UDP sockets whose local port is port
// (lsof -i matches remote ports too), one per process and protocol with
// its first IPv4 socket or else its first, ordered by PID then protocol.
func lsofHolders(socks []lsofSocket, port uint16) []lsofSocket {
	var picked []lsofSocket
	for _, s := range socks {
		if s.local.Port() != port || s.proto == broker.TCP && s.state != "LISTEN" {
			continue
		}
		i := slices.IndexFunc(picked, func(p lsofSocket) bool { return p.pid == s.pid && p.proto == s.proto })
		switch {
		case i < 0:
			picked = append(picked, s)
		case picked[i].ipv6 && !s.ipv6:
			picked[i] = s
		}
	}
	slices.SortStableFunc(picked, func(a, b lsofSocket) int {
		return cmp.Or(cmp.Compare(a.pid, b.pid), cmp.Compare(a.proto, b.proto))
	})
	return picked
}
