package unix

import (
	"os"
	"strconv"
	"strings"

	xunix "golang.org/x/sys/unix"
)

// probeTCPLoopback is false: on Linux a listener on any address conflicts
// with a wildcard bind, even with SO_REUSEADDR.
const probeTCPLoopback = false

// privilegeName is what lets a process bind privileged ports.
const privilegeName = "CAP_NET_BIND_SERVICE (or run it as root)"

func socket(domain, typ int) (int, error) {
	return xunix.Socket(domain, typ|xunix.SOCK_CLOEXEC, 0)
}

// privilegedBelow returns the first port an unprivileged process may bind.
// It is read only when a bind was refused, never on the fast path.
func privilegedBelow() uint16 {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 16)
	if err != nil {
		return 1024
	}
	return uint16(n)
}
