package unix

import (
	"os"

	"github.com/portbroker/portbroker/broker"
)

const (
	ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"
	reservedPortsFile  = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// EphemeralRange returns the range the OS picks ephemeral ports from.
func (h *Host) EphemeralRange() (broker.PortRange, error) {
	data, err := os.ReadFile(ephemeralRangeFile)
	if err != nil {
		return broker.PortRange{}, err
	}
	return parseEphemeralRange(ephemeralRangeFile, string(data))
}

// ReservedRanges returns the ports the OS keeps out of ephemeral use
// (ip_local_reserved_ports). A missing file means none.
func (h *Host) ReservedRanges() ([]broker.PortRange, error) {
	data, err := os.ReadFile(reservedPortsFile)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseReservedPorts(reservedPortsFile, string(data))
}
