package broker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseRanges reads a comma-separated list of ports and inclusive ranges,
// such as "8000,9000-9010". Spaces around items are ignored; an empty string
// is no ranges. The result is sorted and merged.
func ParseRanges(s string) ([]PortRange, error) {
	var out []PortRange
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := parsePort(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		last := first
		if isRange {
			if last, err = parsePort(strings.TrimSpace(hi)); err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			if last < first {
				return nil, fmt.Errorf("%q: range ends before it starts", item)
			}
		}
		out = append(out, PortRange{First: first, Last: last})
	}
	return MergeRanges(out), nil
}

// ParseRange reads one port or inclusive range, such as "20000-32767".
func ParseRange(s string) (PortRange, error) {
	rs, err := ParseRanges(s)
	if err != nil {
		return PortRange{}, err
	}
	if len(rs) != 1 || strings.Contains(s, ",") {
		return PortRange{}, fmt.Errorf("%q: want one port or one range like 20000-32767", s)
	}
	return rs[0], nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q: must be a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// MergeRanges sorts ranges and joins those that overlap or touch. Sources
// of merged ranges are kept when they agree and joined when they differ.
func MergeRanges(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.First) - int(b.First) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if int(r.First) <= int(last.Last)+1 {
			if r.Last > last.Last {
				last.Last = r.Last
			}
			if r.Source != "" && r.Source != last.Source && !strings.Contains(last.Source, r.Source) {
				if last.Source == "" {
					last.Source = r.Source
				} else {
					last.Source += "," + r.Source
				}
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangesContaining returns the ranges in rs that contain port.
func rangesContaining(rs []PortRange, port uint16) []PortRange {
	var out []PortRange
	for _, r := range rs {
		if r.Contains(port) {
			out = append(out, r)
		}
	}
	return out
}
