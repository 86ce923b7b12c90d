package windows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

// fakeNetsh answers netsh commands from a table and counts the runs.
type fakeNetsh struct {
	mu   sync.Mutex
	outs map[string]string // by joined args
	errs map[string]error
	runs int
}

func (f *fakeNetsh) run(_ context.Context, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	key := strings.Join(args, " ")
	if err := f.errs[key]; err != nil {
		return "", err
	}
	return f.outs[key], nil
}

func (f *fakeNetsh) set(args, out string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outs[args] = out
}

func (f *fakeNetsh) runCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestCache(f *fakeNetsh) (*rangeCache, *fakeClock) {
	clk := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &rangeCache{netsh: f.run, now: clk.now, maxAge: 30 * time.Second}, clk
}

func TestDynamicRange(t *testing.T) {
	en, de := fixture(t, "dynamicport-en.txt"), fixture(t, "dynamicport-de.txt")
	custom := fixture(t, "dynamicport-en-custom.txt") // 10000-10999
	tests := []struct {
		name string
		outs map[string]string
		errs map[string]error
		want broker.PortRange
	}{
		{
			name: "all default",
			outs: map[string]string{
				"int ipv4 show dynamicport tcp": en, "int ipv4 show dynamicport udp": en,
				"int ipv6 show dynamicport tcp": de, "int ipv6 show dynamicport udp": de,
			},
			want: broker.PortRange{First: 49152, Last: 65535, Source: "netsh"},
		},
		{
			name: "udp lowered: lowest start wins",
			outs: map[string]string{
				"int ipv4 show dynamicport tcp": en, "int ipv4 show dynamicport udp": custom,
				"int ipv6 show dynamicport tcp": en, "int ipv6 show dynamicport udp": en,
			},
			want: broker.PortRange{First: 10000, Last: 65535, Source: "netsh"},
		},
		{
			name: "some commands fail",
			outs: map[string]string{"int ipv4 show dynamicport tcp": custom},
			errs: map[string]error{"int ipv4 show dynamicport udp": errors.New("exit status 1")},
			want: broker.PortRange{First: 10000, Last: 10999, Source: "netsh"},
		},
		{
			name: "wine: nothing printed",
			want: broker.PortRange{First: 49152, Last: 65535, Source: "Windows default (netsh int ipv4 show dynamicport tcp: netsh printed nothing)"},
		},
		{
			name: "netsh missing",
			errs: map[string]error{
				"int ipv4 show dynamicport tcp": errors.New(`exec: "netsh": executable file not found in %PATH%`),
			},
			want: broker.PortRange{First: 49152, Last: 65535, Source: `Windows default (netsh int ipv4 show dynamicport tcp: exec: "netsh": executable file not found in %PATH%)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestCache(&fakeNetsh{outs: tt.outs, errs: tt.errs})
			if diff := cmp.Diff(tt.want, c.dynamicRange(t.Context())); diff != "" {
				t.Errorf("dynamic range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDynamicRangeCached(t *testing.T) {
	f := &fakeNetsh{outs: map[string]string{}}
	c, clk := newTestCache(f)
	first := c.dynamicRange(t.Context())
	runs := f.runCount()
	if runs != 4 {
		t.Fatalf("first read ran netsh %d times, want 4", runs)
	}
	f.set("int ipv4 show dynamicport tcp", fixture(t, "dynamicport-en-custom.txt"))
	clk.advance(29 * time.Second)
	if got := c.dynamicRange(t.Context()); got != first || f.runCount() != runs {
		t.Errorf("within maxAge: got %v after %d runs, want cached %v after %d", got, f.runCount(), first, runs)
	}
	clk.advance(time.Second)
	if got := c.dynamicRange(t.Context()); got.First != 10000 || f.runCount() != 2*runs {
		t.Errorf("after maxAge: got %v after %d runs, want a fresh read starting at 10000", got, f.runCount())
	}
}

func TestExcludedRanges(t *testing.T) {
	f := &fakeNetsh{outs: map[string]string{
		"int ipv4 show excludedportrange protocol=tcp": fixture(t, "excluded-en.txt"),
		"int ipv4 show excludedportrange protocol=udp": fixture(t, "excluded-en-empty.txt"),
		"int ipv6 show excludedportrange protocol=tcp": "      8100        8200\r\n",
		"int ipv6 show excludedportrange protocol=udp": "      3000        3000\r\n",
	}}
	c, clk := newTestCache(f)
	want := []broker.PortRange{
		{First: 1080, Last: 1080, Source: SourceExcluded},
		{First: 3000, Last: 3000, Source: SourceExcluded},
		{First: 5357, Last: 5357, Source: SourceExcluded},
		{First: 7913, Last: 8200, Source: SourceExcluded},
		{First: 50000, Last: 50060, Source: SourceAdministered + "," + SourceExcluded},
	}
	got, err := c.excludedRanges(t.Context(), c.maxAge)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}

	// WinNAT moved a range: the cache hides it until maxAge or a forced refresh.
	f.set("int ipv6 show excludedportrange protocol=udp", "      3100        3100\r\n")
	clk.advance(10 * time.Second)
	got, _ = c.excludedRanges(t.Context(), c.maxAge)
	if got[1].First != 3000 {
		t.Errorf("within maxAge: second range %v, want the cached 3000", got[1])
	}
	got, _ = c.excludedRanges(t.Context(), 0)
	if got[1].First != 3100 {
		t.Errorf("forced: second range %v, want the moved 3100", got[1])
	}

	// Callers cannot change the cache through the slice they get.
	got[0].First = 1
	if again, _ := c.excludedRanges(t.Context(), c.maxAge); again[0].First != 1080 {
		t.Errorf("cache changed through a returned slice: %v", again[0])
	}
}

func TestExcludedRangesWine(t *testing.T) {
	c, _ := newTestCache(&fakeNetsh{})
	got, err := c.excludedRanges(t.Context(), c.maxAge)
	if err != nil || got != nil {
		t.Errorf("silent netsh: got %v, %v; want no ranges and no error", got, err)
	}
}

func TestExcludedRangesFailure(t *testing.T) {
	f := &fakeNetsh{outs: map[string]string{
		"int ipv4 show excludedportrange protocol=tcp": "      5357        5357\r\n",
	}}
	c, clk := newTestCache(f)
	if _, err := c.excludedRanges(t.Context(), c.maxAge); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("exit status 1")
	f.errs = map[string]error{"int ipv6 show excludedportrange protocol=udp": boom}
	clk.advance(time.Minute)
	got, err := c.excludedRanges(t.Context(), c.maxAge)
	if !errors.Is(err, boom) || got != nil {
		t.Fatalf("failed refresh: got %v, %v; want no ranges and %v", got, err, boom)
	}
	if !strings.Contains(err.Error(), "netsh int ipv6 show excludedportrange protocol=udp") {
		t.Errorf("error %q does not name the command", err)
	}
	// Classification keeps the last good ranges.
	if last := c.lastExcluded(t.Context(), c.maxAge); len(last) != 1 || last[0].First != 5357 {
		t.Errorf("last good ranges = %v, want 5357", last)
	}
	// The failure is cached too, so a broken netsh is not run on every call.
	runs := f.runCount()
	if _, err := c.excludedRanges(t.Context(), c.maxAge); err == nil || f.runCount() != runs {
		t.Errorf("within maxAge of a failure: err %v after %d runs, want the cached error after %d", err, f.runCount(), runs)
	}
}
