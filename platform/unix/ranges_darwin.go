package unix

import (
	"fmt"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// EphemeralRange returns the range the OS picks ephemeral ports from.
func (h *Host) EphemeralRange() (broker.PortRange, error) {
	first, err := sysctlPort("net.inet.ip.portrange.first")
	if err != nil {
		return broker.PortRange{}, err
	}
	last, err := sysctlPort("net.inet.ip.portrange.last")
	if err != nil {
		return broker.PortRange{}, err
	}
	if first > last {
		return broker.PortRange{}, fmt.Errorf("sysctl net.inet.ip.portrange: first port %d is above last port %d", first, last)
	}
	return broker.PortRange{First: first, Last: last, Source: "net.inet.ip.portrange"}, nil
}

// ReservedRanges returns none: macOS reserves no ports outside its
// ephemeral range.
func (h *Host) ReservedRanges() ([]broker.PortRange, error) {
	return nil, nil
}

func sysctlPort(name string) (uint16, error) {
	v, err := xunix.SysctlUint32(name)
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", name, err)
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("sysctl %s: %d: want a port from 1 to 65535", name, v)
	}
	return uint16(v), nil
}
