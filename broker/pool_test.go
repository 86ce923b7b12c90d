package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRanges(t *testing.T) {
	tests := []struct {
		in      string
		want    []PortRange
		wantErr string
	}{
		{in: "", want: nil},
		{in: "8000", want: []PortRange{{First: 8000, Last: 8000}}},
		{in: " 9000-9010 , 8000 ", want: []PortRange{{First: 8000, Last: 8000}, {First: 9000, Last: 9010}}},
		{in: "1-10,5-20,21", want: []PortRange{{First: 1, Last: 21}}},
		{in: "8000,,8001", want: []PortRange{{First: 8000, Last: 8001}}},
		{in: "0", wantErr: "from 1 to 65535"},
		{in: "65536", wantErr: "from 1 to 65535"},
		{in: "10-5", wantErr: "ends before it starts"},
		{in: "abc", wantErr: "must be a number"},
		{in: "1-2-3", wantErr: "must be a number"},
	}
	for _, tt := range tests {
		got, err := ParseRanges(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRanges(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRanges(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseRanges(%q) (-want +got):\n%s", tt.in, diff)
		}
		if back, err := ParseRanges(FormatRanges(got)); err != nil || !cmp.Equal(back, got) {
			t.Errorf("ParseRanges(FormatRanges(%v)) = %v, %v", got, back, err)
		}
	}
	if _, err := ParseRange("1-2,5"); err == nil {
		t.Errorf("ParseRange accepted two ranges")
	}
}

func TestDefaultRange(t *testing.T) {
	tests := []struct {
		eph  PortRange
		want PortRange
	}{
		{PortRange{First: 32768, Last: 60999}, PortRange{First: 20000, Last: 32767}}, // Linux
		{PortRange{First: 49152, Last: 65535}, PortRange{First: 20000, Last: 49151}}, // Windows, macOS
		{PortRange{First: 60000, Last: 65535}, PortRange{First: 20000, Last: 49151}}, // capped
		{PortRange{First: 10000, Last: 65535}, PortRange{First: 1024, Last: 9999}},   // too low for 20000
		{PortRange{}, PortRange{First: 20000, Last: 49151}},
	}
	for _, tt := range tests {
		got := DefaultRange(tt.eph)
		if got.First != tt.want.First || got.Last != tt.want.Last {
			t.Errorf("DefaultRange(%v) = %v, want %v", tt.eph, got, tt.want)
		}
	}
}

func TestPoolArithmetic(t *testing.T) {
	linux := PortRange{First: 32768, Last: 60999}
	tests := []struct {
		name    string
		cfg     PoolConfig
		size    int
		in, out []uint16
		wantErr string
	}{
		{name: "default linux", cfg: PoolConfig{Ephemeral: linux}, size: 12768, in: []uint16{20000, 32767}, out: []uint16{19999, 32768}},
		{name: "configured range cut at the ephemeral start", cfg: PoolConfig{Range: PortRange{First: 30000, Last: 40000}, Ephemeral: linux}, size: 2768, in: []uint16{30000, 32767}, out: []uint16{32768, 40000}},
		{name: "reserved and excluded", cfg: PoolConfig{
			Range: PortRange{First: 20000, Last: 20099}, Ephemeral: linux,
			Reserved: []PortRange{{First: 20010, Last: 20019}}, Exclude: []PortRange{{First: 20050, Last: 20050}},
		}, size: 89, in: []uint16{20009, 20020, 20049, 20051}, out: []uint16{20010, 20019, 20050}},
		{name: "privileged ports", cfg: PoolConfig{Range: PortRange{First: 1000, Last: 1100}}, size: 77, in: []uint16{1024}, out: []uint16{1000, 1023}},
		{name: "inside ephemeral", cfg: PoolConfig{Range: PortRange{First: 40000, Last: 40100}, Ephemeral: linux}, wantErr: "no usable port"},
		{name: "all reserved", cfg: PoolConfig{Range: PortRange{First: 20000, Last: 20001}, Reserved: []PortRange{{First: 20000, Last: 20001}}}, wantErr: "no usable port"},
		{name: "backwards", cfg: PoolConfig{Range: PortRange{First: 20001, Last: 20000}}, wantErr: "first <= last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newPool(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.size != tt.size || p.free != tt.size {
				t.Errorf("size %d free %d, want %d", p.size, p.free, tt.size)
			}
			for _, port := range tt.in {
				if !p.inPool(port) {
					t.Errorf("%d not in pool", port)
				}
			}
			for _, port := range tt.out {
				if p.inPool(port) {
					t.Errorf("%d in pool", port)
				}
			}
		})
	}
}

func TestPoolAllocation(t *testing.T) {
	p, err := newPool(PoolConfig{Range: PortRange{First: 20000, Last: 20199}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for range 200 {
		port, ok := p.candidate()
		if !ok || seen[port] {
			t.Fatalf("candidate = %d, %v; repeated or missing", port, ok)
		}
		seen[port] = true
		p.take(port)
	}
	if _, ok := p.candidate(); ok || p.free != 0 {
		t.Fatalf("full pool still offers a port (free %d)", p.free)
	}
	p.give(20100)
	p.give(20100) // twice must not count twice
	if p.free != 1 {
		t.Fatalf("free = %d after giving one port back twice", p.free)
	}
	if port, ok := p.candidate(); !ok || port != 20100 {
		t.Fatalf("candidate = %d, %v; want 20100", port, ok)
	}
	now := time.Unix(0, 0)
	p.rest(20100, now)
	if _, ok := p.candidate(); ok {
		t.Fatal("rested port offered")
	}
	p.sweep(now.Add(busyRest - time.Second))
	if p.free != 0 {
		t.Fatal("port back before its rest ended")
	}
	p.sweep(now.Add(busyRest))
	if port, ok := p.candidate(); !ok || port != 20100 {
		t.Fatalf("after rest candidate = %d, %v", port, ok)
	}
}

func TestPortSetNextWraps(t *testing.T) {
	var s portSet
	s.add(5)
	s.add(65535)
	for _, tt := range []struct{ from, want uint16 }{{0, 5}, {5, 5}, {6, 65535}, {65535, 65535}} {
		if got, ok := s.next(tt.from); !ok || got != tt.want {
			t.Errorf("next(%d) = %d, %v; want %d", tt.from, got, ok, tt.want)
		}
	}
	s.remove(65535)
	if got, ok := s.next(6); !ok || got != 5 {
		t.Errorf("next(6) = %d, %v; want wrap to 5", got, ok)
	}
	s.remove(5)
	if _, ok := s.next(0); ok || s.count() != 0 {
		t.Errorf("empty set returned a member")
	}
}

func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"", "8000", "9000-9010,8000", "1-65535", "0", "5-1", " 1 , 2 ", "1-2-3", "-", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRanges(s)
		if err != nil {
			return
		}
		for i, r := range rs {
			if r.First == 0 || r.Last < r.First {
				t.Fatalf("range %v from %q is not valid", r, s)
			}
			if i > 0 && int(rs[i-1].Last)+1 >= int(r.First) {
				t.Fatalf("ranges %v from %q are not merged and sorted", rs, s)
			}
		}
		back, err := ParseRanges(FormatRanges(rs))
		if err != nil || !cmp.Equal(back, rs) {
			t.Fatalf("round trip of %v: %v, %v", rs, back, err)
		}
	})
}

func TestSetHostRanges(t *testing.T) {
	r := newRig(t, Config{})
	held := r.acquire(AcquireRequest{Name: "held"}).Lease // 20000
	eph := smallPool.Ephemeral
	changed, err := r.b.SetHostRanges(eph, []PortRange{{First: held.Port, Last: held.Port + 9, Source: "excluded"}})
	if err != nil || !changed {
		t.Fatalf("SetHostRanges = %v, %v", changed, err)
	}
	if changed, _ := r.b.SetHostRanges(eph, []PortRange{{First: held.Port, Last: held.Port + 9, Source: "excluded"}}); changed {
		t.Error("the same ranges counted as a change")
	}
	st := r.b.Status()
	if st.PoolSize != 90 || st.PoolFree != 90 || len(st.Reserved) != 1 {
		t.Errorf("status = %+v, want 90 ports, all free, one reserved range", st)
	}
	if _, err := r.b.Get(held.ID); err != nil {
		t.Errorf("lease on a newly reserved port dropped: %v", err)
	}
	for i := range 90 {
		l := r.acquire(AcquireRequest{Name: fmt.Sprint("n", i), OwnerPID: 101}).Lease
		if l.Port >= held.Port && l.Port <= held.Port+9 {
			t.Fatalf("handed out reserved port %d", l.Port)
		}
	}
	_, err = r.b.Acquire(context.Background(), AcquireRequest{Name: "full", OwnerPID: 102})
	mustErr(t, err, ErrExhausted)
	if _, err := r.b.Release(context.Background(), Caller{}, held.ID); err != nil {
		t.Fatal(err)
	}
	if st := r.b.Status(); st.PoolFree != 0 {
		t.Errorf("releasing a lease on a reserved port freed a pool port: %+v", st)
	}
}
