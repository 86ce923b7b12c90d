package windows

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseDynamicPorts(t *testing.T) {
	def := broker.PortRange{First: 49152, Last: 65535, Source: "netsh"}
	tests := []struct {
		fixture string
		want    broker.PortRange
	}{
		{"dynamicport-en.txt", def},
		{"dynamicport-de.txt", def},
		{"dynamicport-fr.txt", def},
		{"dynamicport-ja.txt", def},
		{"dynamicport-en-custom.txt", broker.PortRange{First: 10000, Last: 10999, Source: "netsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := ParseDynamicPorts(fixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDynamicPortsErrors(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{"wine stub", fixture(t, "wine-empty.txt"), "printed nothing"},
		{"blank lines", "\r\n\r\n", "printed nothing"},
		{"error message", "The following command was not found: int ipv4 show dynamicport tcp.\r\n", "found 0"},
		{"one value", "Start Port : 49152\r\n", "found 1"},
		{"three values", "Start Port : 1\r\nNumber of Ports : 2\r\nExtra : 3\r\n", "found 3"},
		{"start zero", "Start Port : 0\r\nNumber of Ports : 10\r\n", "start port 0: must be from 1 to 65535"},
		{"start too big", "Start Port : 70000\r\nNumber of Ports : 10\r\n", "start port 70000"},
		{"count zero", "Start Port : 49152\r\nNumber of Ports : 0\r\n", "number of ports 0"},
		{"past 65535", "Start Port : 65000\r\nNumber of Ports : 537\r\n", "number of ports 537"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDynamicPorts(tt.out)
			if err == nil {
				t.Fatalf("ParseDynamicPorts = %v, want error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ParseDynamicPorts(""); !errors.Is(err, errNoOutput) {
		t.Errorf("empty output: error %v, want errNoOutput", err)
	}
}

func TestParseDynamicPortsEndsAtLastPort(t *testing.T) {
	got, err := ParseDynamicPorts("Start Port : 65000\nNumber of Ports : 536\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (broker.PortRange{First: 65000, Last: 65535, Source: "netsh"}); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseExcludedRanges(t *testing.T) {
	const src = SourceExcluded
	tests := []struct {
		fixture string
		want    []broker.PortRange
	}{
		{"excluded-en.txt", []broker.PortRange{
			{First: 1080, Last: 1080, Source: src},
			{First: 5357, Last: 5357, Source: src},
			// Hyper-V reserves in adjacent blocks; they merge.
			{First: 7913, Last: 8112, Source: src},
			{First: 50000, Last: 50060, Source: SourceAdministered + "," + src},
		}},
		{"excluded-de.txt", []broker.PortRange{
			{First: 2869, Last: 2869, Source: src},
			{First: 4294, Last: 4493, Source: src},
			{First: 5357, Last: 5357, Source: src},
			{First: 50000, Last: 50059, Source: SourceAdministered},
		}},
		{"excluded-fr.txt", []broker.PortRange{
			{First: 5357, Last: 5357, Source: src},
			{First: 8005, Last: 8104, Source: src},
			{First: 49709, Last: 49808, Source: src},
			{First: 50000, Last: 50059, Source: SourceAdministered},
		}},
		{"excluded-ja.txt", []broker.PortRange{
			{First: 5357, Last: 5357, Source: src},
			{First: 50000, Last: 50059, Source: SourceAdministered},
		}},
		{"excluded-en-empty.txt", nil},
		{"excluded-de-empty.txt", nil},
		{"wine-empty.txt", nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := ParseExcludedRanges(fixture(t, tt.fixture), src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseExcludedRangesMergesOverlaps(t *testing.T) {
	out := "  100 200\n  150 300\n  301 301\n  500 500\n  400 600\n"
	got, err := ParseExcludedRanges(out, "x")
	if err != nil {
		t.Fatal(err)
	}
	want := []broker.PortRange{{First: 100, Last: 301, Source: "x"}, {First: 400, Last: 600, Source: "x"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
}

func TestParseExcludedRangesErrors(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{"reversed", "Start Port    End Port\r\n      5000        4000\r\n", "line 2: range 5000-4000"},
		{"zero", "         0          10\r\n", "range 0-10"},
		{"too big", "     65535       65536     *\r\n", "range 65535-65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExcludedRanges(tt.out, SourceExcluded)
			if err == nil {
				t.Fatalf("ParseExcludedRanges = %v, want error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseDynamicPorts(f *testing.F) {
	for _, name := range []string{"dynamicport-en.txt", "dynamicport-de.txt", "dynamicport-fr.txt", "dynamicport-ja.txt", "dynamicport-en-custom.txt", "wine-empty.txt"} {
		f.Add(fixture(f, name))
	}
	f.Add("Start Port : 65535\nNumber of Ports : 1\n")
	f.Add("a 1\nb 99999999999999999999\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseDynamicPorts(out)
		if err != nil {
			return
		}
		if r.First < 1 || r.First > r.Last {
			t.Fatalf("ParseDynamicPorts(%q) = %v: not a valid range", out, r)
		}
	})
}

func FuzzParseExcludedRanges(f *testing.F) {
	for _, name := range []string{"excluded-en.txt", "excluded-de.txt", "excluded-fr.txt", "excluded-ja.txt", "excluded-en-empty.txt", "wine-empty.txt"} {
		f.Add(fixture(f, name))
	}
	f.Add("1 65535 *\n65535 65535\n")
	f.Add("10 5\n")
	f.Fuzz(func(t *testing.T, out string) {
		rs, err := ParseExcludedRanges(out, SourceExcluded)
		if err != nil {
			return
		}
		for i, r := range rs {
			if r.First < 1 || r.First > r.Last {
				t.Fatalf("range %d of %q is %v: not a valid range", i, out, r)
			}
			if i > 0 && int(rs[i-1].Last)+1 >= int(r.First) {
				t.Fatalf("ranges %v and %v of %q are not sorted and merged", rs[i-1], r, out)
			}
		}
	})
}
