// Package windows is the port broker's host on Windows: the dynamic and
// excluded port ranges, bind probes that explain WSAEACCES (10013), process
// lookup, inspection and exit watching, the owners of ports, stopping
// processes, job objects that take a service's whole tree down with them,
// and the firewall rules the broker manages.
//
// The netsh parsers, the owner-table decoders, the process-tree walk and the
// bind classification are plain functions built on every OS, so their tests
// run anywhere; everything that calls Windows lives in *_windows.go files.
package windows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/portbroker/portbroker/broker"
)

// Sources of excluded port ranges.
const (
	// SourceExcluded marks ranges Windows excluded on its own, nearly always
	// for Hyper-V, WinNAT, WSL or Docker; they move at every boot.
	SourceExcluded = "excluded (Hyper-V/WinNAT/WSL)"
	// SourceAdministered marks ranges an administrator excluded with
	// `netsh int ipv4 add excludedportrange`; netsh flags them with '*'.
	SourceAdministered = "administered"
)

// defaultDynamicRange is the dynamic (ephemeral) port range Windows uses
// unless an administrator changed it.
var defaultDynamicRange = broker.PortRange{First: 49152, Last: 65535, Source: "Windows default"}

// errNoOutput means netsh printed nothing, as Wine's stub does.
var errNoOutput = errors.New("netsh printed nothing")

// ParseDynamicPorts reads the output of `netsh int ipv4 show dynamicport tcp`
// (or udp, or ipv6):
//
//	Protocol tcp Dynamic Port Range
//	---------------------------------
//	Start Port      : 49152
//	Number of Ports : 16384
//
// The labels are localized ("Startport", "Anzahl der Ports", ...) and printed
// in the console code page, so only the two "label : number" lines count:
// the first is the start port, the second the number of ports.
func ParseDynamicPorts(out string) (broker.PortRange, error) {
	if strings.TrimSpace(out) == "" {
		return broker.PortRange{}, errNoOutput
	}
	var values []uint64
	for line := range strings.Lines(out) {
		if v, ok := labelledNumber(line); ok {
			values = append(values, v)
		}
	}
	if len(values) != 2 {
		return broker.PortRange{}, fmt.Errorf("netsh dynamic port output: want 2 \"label : number\" lines (start port, number of ports), found %d", len(values))
	}
	start, count := values[0], values[1]
	if start < 1 || start > 65535 {
		return broker.PortRange{}, fmt.Errorf("netsh dynamic port output: start port %d: must be from 1 to 65535", start)
	}
	if count < 1 || start+count-1 > 65535 {
		return broker.PortRange{}, fmt.Errorf("netsh dynamic port output: number of ports %d: must be at least 1 and end the range at or below 65535 (start %d)", count, start)
	}
	return broker.PortRange{First: uint16(start), Last: uint16(start + count - 1), Source: "netsh"}, nil
}

// labelledNumber returns the number ending a "label : number" line. The
// label may be in any language and code page, and the colon ASCII or full
// width, so a value line is any line whose last field is a number and whose
// other fields are not all numbers.
func labelledNumber(line string) (uint64, bool) {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0, false
	}
	v, ok := decimal(fields[len(fields)-1])
	if !ok {
		return 0, false
	}
	for _, f := range fields[:len(fields)-1] {
		if _, isNum := decimal(f); !isNum {
			return v, true
		}
	}
	return 0, false
}

// ParseExcludedRanges reads the output of
// `netsh int ipv4 show excludedportrange protocol=tcp` (or udp, or ipv6):
//
//	Protocol tcp Port Exclusion Ranges
//
//	Start Port    End Port
//	----------    --------
//	      5357        5357
//	     50000       50059     *
//
//	* - Administered port exclusions.
//
// Headers and the footnote are localized, so only lines of two numbers,
// optionally followed by '*', count. Ranges marked '*' get
// SourceAdministered; the others get source. The result is sorted, with
// overlapping and adjacent ranges merged. Output with no number lines (an
// empty table, or Wine's silent stub) yields no ranges.
func ParseExcludedRanges(out string, source string) ([]broker.PortRange, error) {
	var rs []broker.PortRange
	n := 0
	for line := range strings.Lines(out) {
		n++
		fields := strings.Fields(line)
		src := source
		switch {
		case len(fields) == 3 && fields[2] == "*":
			src = SourceAdministered
		case len(fields) == 2:
		default:
			continue
		}
		first, ok1 := decimal(fields[0])
		last, ok2 := decimal(fields[1])
		if !ok1 || !ok2 {
			continue
		}
		if first < 1 || last > 65535 || first > last {
			return nil, fmt.Errorf("netsh excluded port output line %d: range %d-%d: ports must be from 1 to 65535 with start <= end", n, first, last)
		}
		rs = append(rs, broker.PortRange{First: uint16(first), Last: uint16(last), Source: src})
	}
	return broker.MergeRanges(rs), nil
}

// decimal parses s when it is only ASCII digits and fits a port with room
// to spare; anything else is not a number line.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
