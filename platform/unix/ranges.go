//go:build unix

package unix

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/portbroker/portbroker/broker"
)

// parseEphemeralRange reads the "FIRST LAST" pair of ip_local_port_range.
// src names where data came from, for errors.
func parseEphemeralRange(src, data string) (broker.PortRange, error) {
	fields := strings.Fields(data)
	if len(fields) != 2 {
		return broker.PortRange{}, fmt.Errorf("%s: %q: want two ports, FIRST and LAST, separated by white space", src, data)
	}
	first, err := parsePort(fields[0], 1)
	if err != nil {
		return broker.PortRange{}, fmt.Errorf("%s: first port: %w", src, err)
	}
	last, err := parsePort(fields[1], 1)
	if err != nil {
		return broker.PortRange{}, fmt.Errorf("%s: last port: %w", src, err)
	}
	if first > last {
		return broker.PortRange{}, fmt.Errorf("%s: first port %d is above last port %d", src, first, last)
	}
	return broker.PortRange{First: first, Last: last, Source: "ip_local_port_range"}, nil
}

// parseReservedPorts reads ip_local_reserved_ports: a comma-separated list of
// ports and FIRST-LAST ranges, possibly empty.
func parseReservedPorts(src, data string) ([]broker.PortRange, error) {
	data = strings.TrimSpace(data)
	if data == "" {
		return nil, nil
	}
	var rs []broker.PortRange
	for i, item := range strings.Split(data, ",") {
		r, err := parseReservedItem(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("%s: item %d: %w", src, i+1, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func parseReservedItem(item string) (broker.PortRange, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	first, err := parsePort(strings.TrimSpace(lo), 0)
	if err != nil {
		return broker.PortRange{}, err
	}
	last := first
	if isRange {
		if last, err = parsePort(strings.TrimSpace(hi), 0); err != nil {
			return broker.PortRange{}, err
		}
	}
	if first > last {
		return broker.PortRange{}, fmt.Errorf("range %q: first port %d is above last port %d", item, first, last)
	}
	return broker.PortRange{First: first, Last: last, Source: "ip_local_reserved_ports"}, nil
}

// parsePort reads a decimal port from lowest to 65535.
func parsePort(s string, lowest uint16) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < uint64(lowest) || n > 65535 {
		return 0, fmt.Errorf("port %q: want a decimal number from %d to 65535", s, lowest)
	}
	return uint16(n), nil
}
