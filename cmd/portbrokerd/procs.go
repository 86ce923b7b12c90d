package main

import (
	"os"
	"runtime"
)

// oneProc runs the daemon's goroutines on one OS thread at a time unless
// GOMAXPROCS says otherwise. Each call's work is a few tens of
// microseconds; with more Ps, the runtime hands each call between
// threads (network poller, handler, writer, each blocking syscall), and on
// a busy or virtual machine every such wake-up costs more than the work
// itself. Measured with one client over the unix socket (BENCHMARKS.md):
// an acquire and release take a third less time, an empty call a quarter.
// Blocking syscalls still hand the P to another thread, and goroutines are
// still preempted, so one slow call does not stall the others.
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
