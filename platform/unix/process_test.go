//go:build linux || darwin

package unix

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// commName is the name the kernel records for an executable at path.
func commName(path string) string {
	name := filepath.Base(path)
	max := 15 // Linux TASK_COMM_LEN - 1
	if runtime.GOOS == "darwin" {
		max = 16 // MAXCOMLEN
	}
	if len(name) > max {
		name = name[:max]
	}
	return name
}

func TestLookupSelf(t *testing.T) {
	h := New()
	p, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatalf("Lookup(self): %v", err)
	}
	again, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatalf("Lookup(self) again: %v", err)
	}
	if !p.Same(again) {
		t.Errorf("two Lookups of self differ: %v at %v, then at %v", p, p.StartTime, again.StartTime)
	}
	if want := commName(os.Args[0]); p.Name != want {
		t.Errorf("Name = %q, want %q", p.Name, want)
	}
	if want := strconv.Itoa(os.Getuid()); p.User != want {
		t.Errorf("User = %q, want %q", p.User, want)
	}
	if p.PID != os.Getpid() {
		t.Errorf("PID = %d, want %d", p.PID, os.Getpid())
	}
	// A fresh Host (a restarted daemon) agrees.
	if other, err := New().Lookup(os.Getpid()); err != nil || !other.Same(p) {
		t.Errorf("Lookup(self) by a new Host = %v at %v, %v; want the same start time %v", other, other.StartTime, err, p.StartTime)
	}
}

func TestLookupChild(t *testing.T) {
	h := New()
	before := time.Now()
	c := runChild(t)
	after := time.Now()

	p := c.lookup(t, h)
	if again := c.lookup(t, h); !p.Same(again) {
		t.Errorf("two Lookups of the child differ: %v, then %v", p.StartTime, again.StartTime)
	}
	if want := commName(os.Args[0]); p.Name != want {
		t.Errorf("Name = %q, want %q", p.Name, want)
	}
	if want := strconv.Itoa(os.Getuid()); p.User != want {
		t.Errorf("User = %q, want %q", p.User, want)
	}
	// The boot time is whole seconds and clock ticks are 10ms, so allow that
	// much error; a wrong unit would be off by far more.
	if p.StartTime.Before(before.Add(-2*time.Second)) || p.StartTime.After(after.Add(time.Second)) {
		t.Errorf("StartTime = %v, want between %v and %v", p.StartTime, before, after)
	}

	fake := p
	fake.StartTime = p.StartTime.Add(-time.Second)
	if fake.Same(c.lookup(t, h)) {
		t.Errorf("a process with the child's PID and another start time is Same")
	}
}

// TestLookupGone checks Lookup and Inspect alike on processes that are
// not there or no longer run.
func TestLookupGone(t *testing.T) {
	h := New()
	tests := []struct {
		name string
		pid  func(t *testing.T) int
	}{
		{"zero", func(*testing.T) int { return 0 }},
		{"negative", func(*testing.T) int { return -1 }},
		{"never used", func(*testing.T) int { return 1<<31 - 1 }},
		{"killed and reaped", func(t *testing.T) int {
			c := runChild(t)
			c.killAndReap(t)
			return c.pid()
		}},
		{"killed, not reaped (zombie)", func(t *testing.T) int {
			c := runChild(t)
			c.kill(t)
			// Wait for the zombie without reaping it.
			waitZombie(t, c.pid())
			return c.pid()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.pid(t)
			if p, err := h.Lookup(pid); !errors.Is(err, broker.ErrNoProcess) {
				t.Errorf("Lookup(%d) = %v, %v; want ErrNoProcess", pid, p, err)
			}
			if info, err := h.Inspect(pid); !errors.Is(err, broker.ErrNoProcess) {
				t.Errorf("Inspect(%d) = %+v, %v; want ErrNoProcess", pid, info, err)
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	h := New()
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Lookup(pid); err != nil {
			b.Fatal(err)
		}
	}
}
