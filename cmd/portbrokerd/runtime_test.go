package main

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int64
	}{
		{0, memFloor},
		{6 * mib, memFloor}, // about 10,000 leases
		{8 * mib, 20 * mib},
		{42 * mib, 71 * mib}, // about 65,536 leases, the default limit
	} {
		if got := memoryLimit(tc.live); got != tc.want {
			t.Errorf("memoryLimit(%d MiB) = %.1f MiB, want %.1f MiB", tc.live/mib, float64(got)/mib, float64(tc.want)/mib)
		}
	}
	// Above the floor the limit keeps half the live heap as headroom, so
	// the collector is never asked to run back to back.
	for live := uint64(0); live < 1<<30; live += 7 * mib {
		if l := memoryLimit(live); l < int64(live+live/2) || l < memFloor {
			t.Fatalf("memoryLimit(%d) = %d: less than 1.5 times the live heap or the floor", live, l)
		}
	}
}

// TestFollowHeapSeesEveryCollection: the limit follows the heap up when
// leases pile up and down when they go, driven by collections alone.
func TestFollowHeapSeesEveryCollection(t *testing.T) {
	var mu sync.Mutex
	var seen []uint64
	stop := followHeap(func(live uint64) {
		mu.Lock()
		seen = append(seen, live)
		mu.Unlock()
	})
	defer stop()
	last := func() (uint64, int) {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1], len(seen)
	}
	waitFor := func(what string, ok func(live uint64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			if live, _ := last(); ok(live) {
				return
			}
			if time.Now().After(deadline) {
				live, n := last()
				t.Fatalf("%s: after %d reports the live heap reads %d", what, n, live)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const big = 64 << 20
	held := make([]byte, big)
	for i := range held {
		held[i] = byte(i)
	}
	waitFor("heap grown", func(live uint64) bool { return live >= big })
	runtime.KeepAlive(held) // unreachable from here on
	waitFor("heap shrunk", func(live uint64) bool { return live < big/2 })

	stop()
	runtime.GC() // a finalizer already queued may still report once
	time.Sleep(50 * time.Millisecond)
	_, before := last()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if _, after := last(); after != before {
		t.Errorf("%d reports after stop", after-before)
	}
}
