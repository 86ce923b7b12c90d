//go:build linux || darwin

package unix

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portbroker/portbroker/broker"
)

const ephemeralSrc = "/proc/sys/net/ipv4/ip_local_port_range"

func TestParseEphemeralRange(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    broker.PortRange
		wantErr string // the rule the error must state
	}{
		{"linux default", "32768\t60999\n", broker.PortRange{First: 32768, Last: 60999}, ""},
		{"spaces", "  1024   65535  ", broker.PortRange{First: 1024, Last: 65535}, ""},
		{"one port", "5000 5000", broker.PortRange{First: 5000, Last: 5000}, ""},
		{"widest", "1\t65535\n", broker.PortRange{First: 1, Last: 65535}, ""},
		{"empty", "", broker.PortRange{}, "want two ports"},
		{"one number", "32768\n", broker.PortRange{}, "want two ports"},
		{"three numbers", "1 2 3", broker.PortRange{}, "want two ports"},
		{"garbage", "low high", broker.PortRange{}, `first port: port "low": want a decimal number from 1 to 65535`},
		{"garbage last", "1024 high", broker.PortRange{}, `last port: port "high"`},
		{"reversed", "60999 32768", broker.PortRange{}, "first port 60999 is above last port 32768"},
		{"zero", "0 100", broker.PortRange{}, "from 1 to 65535"},
		{"too high", "1024 65536", broker.PortRange{}, "from 1 to 65535"},
		{"negative", "-1 100", broker.PortRange{}, "from 1 to 65535"},
		{"comma", "1024,2048", broker.PortRange{}, "want two ports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEphemeralRange(ephemeralSrc, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), ephemeralSrc+": ") {
					t.Fatalf("parseEphemeralRange(%q) = %v, %v; want an error naming %s and %q", tt.in, got, err, ephemeralSrc, tt.wantErr)
				}
				return
			}
			if err != nil || got.First != tt.want.First || got.Last != tt.want.Last {
				t.Fatalf("parseEphemeralRange(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func reserved(first, last uint16) broker.PortRange {
	return broker.PortRange{First: first, Last: last, Source: "ip_local_reserved_ports"}
}

func TestParseReservedPorts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []broker.PortRange
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"newline only", "\n", nil, ""},
		{"one port", "8000\n", []broker.PortRange{reserved(8000, 8000)}, ""},
		{"port and range", "8000,9000-9010\n", []broker.PortRange{reserved(8000, 8000), reserved(9000, 9010)}, ""},
		{"spaces around items", " 8000 , 9000 - 9010 ", []broker.PortRange{reserved(8000, 8000), reserved(9000, 9010)}, ""},
		{"one-port range", "7-7", []broker.PortRange{reserved(7, 7)}, ""},
		{"everything", "0-65535", []broker.PortRange{reserved(0, 65535)}, ""},
		{"empty item", "8000,,9000", nil, `item 2: port "": want a decimal number`},
		{"trailing comma", "8000,", nil, `item 2: port ""`},
		{"reversed range", "9010-9000", nil, `item 1: range "9010-9000": first port 9010 is above last port 9000`},
		{"too high", "70000", nil, "from 0 to 65535"},
		{"open range", "8000-", nil, `port ""`},
		{"negative", "-5", nil, `port ""`},
		{"two dashes", "1-2-3", nil, `port "2-3"`},
		{"garbage", "http", nil, `port "http"`},
		{"tab separated", "8000\t9000", nil, `port "8000\t9000"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReservedPorts(reservedPortsSrc, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), reservedPortsSrc+": ") {
					t.Fatalf("parseReservedPorts(%q) = %v, %v; want an error naming %s and %q", tt.in, got, err, reservedPortsSrc, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseReservedPorts(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseReservedPorts(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

const reservedPortsSrc = "/proc/sys/net/ipv4/ip_local_reserved_ports"

func FuzzParseReservedPorts(f *testing.F) {
	for _, s := range []string{"", "\n", "8000", "8000,9000-9010\n", "0-65535", "1,2,3-4", "9-1", "a,b", " 1 - 2 ,3", "65536", "1--2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := parseReservedPorts(reservedPortsSrc, in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), reservedPortsSrc+": ") {
				t.Fatalf("error %q does not name its source", err)
			}
			return
		}
		for _, r := range rs {
			if r.First > r.Last {
				t.Fatalf("parseReservedPorts(%q) accepted reversed range %v", in, r)
			}
		}
		// What the parser accepts survives formatting and parsing again.
		again, err := parseReservedPorts(reservedPortsSrc, broker.FormatRanges(rs))
		if err != nil {
			t.Fatalf("parseReservedPorts(FormatRanges(%v)) = %v", rs, err)
		}
		if diff := cmp.Diff(rs, again); diff != "" {
			t.Fatalf("round trip of %q changed the ranges (-first +again):\n%s", in, diff)
		}
	})
}

func TestHostRanges(t *testing.T) {
	h := New()
	eph, err := h.EphemeralRange()
	if err != nil {
		t.Fatalf("EphemeralRange: %v", err)
	}
	if eph.First == 0 || eph.First > eph.Last || eph.Source == "" {
		t.Errorf("EphemeralRange = %+v; want a nonempty range of real ports with a source", eph)
	}
	rs, err := h.ReservedRanges()
	if err != nil {
		t.Fatalf("ReservedRanges: %v", err)
	}
	for _, r := range rs {
		if r.First > r.Last {
			t.Errorf("ReservedRanges returned reversed range %v", r)
		}
	}
}
