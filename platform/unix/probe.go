//go:build unix

package unix

import (
	"errors"
	"fmt"
	"os"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// family is an address family the host probes ports in.
type family struct {
	domain int
	suffix string // of the network name: "tcp" + suffix
}

var (
	inet4 = family{domain: xunix.AF_INET, suffix: "4"}
	inet6 = family{domain: xunix.AF_INET6, suffix: "6"}
)

// detectFamilies returns the families this host can open sockets in. Only a
// kernel's plain refusal of a family drops it; any other error (too many open
// files) keeps it, so that probes report that error instead of hiding it.
func detectFamilies() []family {
	var fs []family
	for _, f := range []family{inet4, inet6} {
		fd, err := socket(f.domain, xunix.SOCK_STREAM)
		if err == nil {
			xunix.Close(fd)
		}
		if errors.Is(err, xunix.EAFNOSUPPORT) || errors.Is(err, xunix.EPROTONOSUPPORT) {
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

// Probe returns nil when port binds for proto on the IPv4 and IPv6 wildcard
// addresses (each family the host has, probed separately), else a
// *broker.BindError for the first probe that failed. It binds the way
// servers do: TCP with SO_REUSEADDR, so connections in TIME_WAIT do not make
// a port busy, and then listens, since a listener is what conflicts. Off
// Linux it probes TCP on the loopback address as well (see
// probeTCPLoopback).
func (h *Host) Probe(port uint16, proto broker.Protocol) error {
	if port == 0 {
		return &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}
	}
	if !proto.Valid() {
		return &broker.FieldError{Field: "protocol", Rule: fmt.Sprintf("%v is not tcp, udp or tcp+udp", proto)}
	}
	for _, f := range h.families() {
		if proto.HasTCP() {
			if err := probe(f, xunix.SOCK_STREAM, port, false); err != nil {
				return err
			}
			if probeTCPLoopback {
				err := probe(f, xunix.SOCK_STREAM, port, true)
				if err != nil && !errors.Is(err, xunix.EADDRNOTAVAIL) {
					return err
				}
			}
		}
		if proto.HasUDP() {
			if err := probe(f, xunix.SOCK_DGRAM, port, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// probe binds one socket of family f and type typ to port on the wildcard
// or the loopback address, and closes it.
func probe(f family, typ int, port uint16, loopback bool) error {
	network := "udp" + f.suffix
	if typ == xunix.SOCK_STREAM {
		network = "tcp" + f.suffix
	}
	fd, err := socket(f.domain, typ)
	if err != nil {
		return bindError(network, port, "socket", err)
	}
	defer xunix.Close(fd)

	if typ == xunix.SOCK_STREAM {
		if err := xunix.SetsockoptInt(fd, xunix.SOL_SOCKET, xunix.SO_REUSEADDR, 1); err != nil {
			return bindError(network, port, "setsockopt SO_REUSEADDR", err)
		}
	}
	var sa xunix.Sockaddr
	if f.domain == xunix.AF_INET6 {
		// Probe IPv6 alone; the IPv4 probe covers IPv4.
		if err := xunix.SetsockoptInt(fd, xunix.IPPROTO_IPV6, xunix.IPV6_V6ONLY, 1); err != nil {
			return bindError(network, port, "setsockopt IPV6_V6ONLY", err)
		}
		sa6 := &xunix.SockaddrInet6{Port: int(port)}
		if loopback {
			sa6.Addr[15] = 1 // ::1
		}
		sa = sa6
	} else {
		sa4 := &xunix.SockaddrInet4{Port: int(port)}
		if loopback {
			sa4.Addr = [4]byte{127, 0, 0, 1}
		}
		sa = sa4
	}
	if err := xunix.Bind(fd, sa); err != nil {
		return bindError(network, port, "bind", err)
	}
	if typ == xunix.SOCK_STREAM {
		if err := xunix.Listen(fd, 1); err != nil {
			return bindError(network, port, "listen", err)
		}
	}
	return nil
}

// bindError classifies the failure of syscall op and says what to do.
func bindError(network string, port uint16, op string, err error) *broker.BindError {
	e := &broker.BindError{Port: port, Network: network, Err: os.NewSyscallError(op, err)}
	switch {
	case errors.Is(err, xunix.EADDRINUSE):
		e.Class = broker.BindInUse
		e.Detail = "address already in use"
		e.Fix = fmt.Sprintf("stop the process holding it (brokerctl who %d) or lease another port", port)
	case errors.Is(err, xunix.EACCES), errors.Is(err, xunix.EPERM):
		e.Class = broker.BindPermission
		if limit := privilegedBelow(); port < limit {
			e.Detail = fmt.Sprintf("permission denied: ports below %d need privileges", limit)
			e.Fix = fmt.Sprintf("lease a port at or above %d, or give the service %s", limit, privilegeName)
		} else {
			e.Detail = "permission denied"
			e.Fix = "check the security policy (SELinux, AppArmor, seccomp, sandbox) that forbids binding this port"
		}
	default:
		e.Class = broker.BindOther
		e.Detail = op + ": " + err.Error()
		e.Fix = "fix the cause above or lease another port"
	}
	return e
}
