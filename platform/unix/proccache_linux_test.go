package unix

import (
	"errors"
	"os"
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// A cached process that exits is never served again: not as a zombie,
// not once reaped.
func TestLookupCacheSeesExit(t *testing.T) {
	h := New()
	c := runChild(t)
	p := c.lookup(t, h)
	if _, ok := h.procs.cache.m[p.PID]; !ok {
		t.Fatalf("Lookup did not cache pid %d", p.PID)
	}
	if again := c.lookup(t, h); again != p {
		t.Errorf("cached Lookup = %+v, want %+v", again, p)
	}
	c.kill(t)
	waitZombie(t, c.pid())
	if got, err := h.Lookup(c.pid()); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Lookup of the cached, now dead child = %+v, %v; want ErrNoProcess", got, err)
	}
	if _, ok := h.procs.cache.m[p.PID]; ok {
		t.Error("a dead process stayed cached")
	}
	c.killAndReap(t)
	if got, err := h.Lookup(c.pid()); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Lookup of the reaped child = %+v, %v; want ErrNoProcess", got, err)
	}
}

// An entry serves for procCacheAge, then /proc is read again.
func TestLookupCacheAge(t *testing.T) {
	h := New()
	now := time.Unix(1_700_000_000, 0)
	h.procs.cache.now = func() time.Time { return now }
	pid := os.Getpid()
	if _, err := h.Lookup(pid); err != nil {
		t.Fatal(err)
	}
	first := h.procs.cache.m[pid]
	now = now.Add(procCacheAge - time.Nanosecond)
	if _, err := h.Lookup(pid); err != nil {
		t.Fatal(err)
	}
	if e := h.procs.cache.m[pid]; e.at != first.at || e.pidfd != first.pidfd {
		t.Errorf("entry replaced before procCacheAge: %+v, then %+v", first, e)
	}
	now = now.Add(time.Nanosecond)
	if _, err := h.Lookup(pid); err != nil {
		t.Fatal(err)
	}
	if e := h.procs.cache.m[pid]; !e.at.Equal(now) {
		t.Errorf("entry at %v after procCacheAge, want refreshed at %v", e.at, now)
	}
}

// openPidfds counts this process's open pidfds.
func openPidfds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// The cache holds at most procCacheSize pidfds and closes those it drops.
func TestLookupCacheBounded(t *testing.T) {
	c := newProcCache()
	defer c.close()
	before := openPidfds(t)
	for i := range procCacheSize + 10 {
		fd, err := xunix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			t.Skipf("pidfd_open: %v", err)
		}
		c.put(fd, broker.Process{PID: 1_000_000 + i})
	}
	if n := len(c.m); n != procCacheSize {
		t.Errorf("cache holds %d entries, want %d", n, procCacheSize)
	}
	if n := openPidfds(t) - before; n != procCacheSize {
		t.Errorf("%d pidfds open, want %d", n, procCacheSize)
	}
	c.close()
	if n := openPidfds(t) - before; n != 0 {
		t.Errorf("%d pidfds open after close, want 0", n)
	}
}

// BenchmarkLookupUncached is BenchmarkLookup without the cache, to compare.
func BenchmarkLookupUncached(b *testing.B) {
	h := New()
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.procs.lookupUncached(pid); err != nil {
			b.Fatal(err)
		}
	}
}
