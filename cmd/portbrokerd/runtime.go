package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// tuneRuntime fits the Go runtime to a daemon whose heap is mostly
// long-lived leases: a soft memory limit that follows the live heap
// (memoryLimit) instead of a lower GOGC. GOGC 50 kept 10,000 leases under
// 40 MB but cost a fifth of the acquire rate, because with a small heap it
// doubles the collections; the limit only trims the headroom once the
// heap is large. GOMEMLIMIT in the environment wins.
func tuneRuntime() {
	if os.Getenv("GOMEMLIMIT") == "" {
		followHeap(func(live uint64) { debug.SetMemoryLimit(memoryLimit(live)) })
	}
}

// serveOnOneP runs the daemon on one P once it serves, unless GOMAXPROCS
// is set. A call's work is tens of microseconds; with more Ps the runtime
// hands each call between threads (network poller, handler, writer, every
// blocking syscall), and each such wake-up costs more than the work.
// Measured over the unix socket: an acquire for one client takes a quarter
// less time, and 8 or 16 clients are served within a few per cent as
// fast (BENCHMARKS.md). Blocking syscalls still hand the P to another
// thread, and goroutines are still preempted, so one slow call does not
// stall others. The start, which decodes the whole store, keeps every P:
// on one it took a fifth longer with 10,000 leases.
func serveOnOneP() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

const (
	memFloor    = 20 << 20 // below this the collector's default pacing rules
	memOverhead = 8 << 20  // stacks, runtime metadata, connection buffers
)

// memoryLimit is the soft limit for a live heap of live bytes: never
// under memFloor, and always half the live heap above it plus the
// non-heap overhead, so a daemon holding many leases never collects
// without pause to stay under a limit it has outgrown.
func memoryLimit(live uint64) int64 {
	return int64(max(memFloor, memOverhead+live+live/2))
}

// gcTick carries the finalizer that fires once per collection; the pointer
// keeps it out of the tiny allocator, where a finalizer may never run.
type gcTick struct{ _ *int }

// followHeap calls f with the live heap after the start and after every
// collection, until the returned stop is called. It costs nothing while
// the daemon is idle: collections are what drive it.
func followHeap(f func(live uint64)) (stop func()) {
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	report := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			f(sample[0].Value.Uint64())
		}
	}
	var onGC func(*gcTick)
	onGC = func(t *gcTick) {
		if stopped.Load() {
			return
		}
		report()
		runtime.SetFinalizer(t, onGC)
	}
	report()
	runtime.SetFinalizer(&gcTick{}, onGC)
	return func() { stopped.Store(true) }
}
