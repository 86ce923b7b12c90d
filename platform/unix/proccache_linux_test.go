package unix

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
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

// The cache holds at most procCacheSize pidfds and closes those it drops.
// It counts the pidfds it made itself, not every pidfd of the process:
// Hosts of other tests close theirs when the collector frees them.
func TestLookupCacheBounded(t *testing.T) {
	c := newProcCache()
	defer c.close()
	var fds []int
	for i := range procCacheSize + 10 {
		fd, err := xunix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			t.Skipf("pidfd_open: %v", err)
		}
		fds = append(fds, fd)
		c.put(fd, broker.Process{PID: 1_000_000 + i})
	}
	if n := len(c.m); n != procCacheSize {
		t.Errorf("cache holds %d entries, want %d", n, procCacheSize)
	}
	// A dropped pidfd's number is reused by the next open: count numbers.
	open := func() int {
		n := 0
		for _, fd := range slices.Compact(slices.Sorted(slices.Values(fds))) {
			if isPidfdOf(fd, os.Getpid()) {
				n++
			}
		}
		return n
	}
	if n := open(); n != procCacheSize {
		t.Errorf("%d of its pidfds open, want %d", n, procCacheSize)
	}
	c.close()
	if n := open(); n != 0 {
		t.Errorf("%d of its pidfds open after close, want 0", n)
	}
}

// isPidfdOf reports whether fd is an open pidfd of pid.
func isPidfdOf(fd, pid int) bool {
	name := strconv.Itoa(fd)
	if target, err := os.Readlink("/proc/self/fd/" + name); err != nil || target != "anon_inode:[pidfd]" {
		return false
	}
	info, err := os.ReadFile("/proc/self/fdinfo/" + name)
	return err == nil && strings.Contains(string(info), "\nPid:\t"+strconv.Itoa(pid)+"\n")
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
