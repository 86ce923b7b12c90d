// Package exitwatchtest is the contract every broker.ExitWatcher keeps:
// the pidfd, kqueue and polling watchers on Unix, the Windows watcher and
// the broker's test fake all run it, so the fake the broker is tested with
// behaves like the real ones.
package exitwatchtest

import (
	"errors"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// failAfter bounds every wait for an exit; it is a failure bound, not a
// timing assertion.
const failAfter = 30 * time.Second

// Harness connects the contract to one watcher and a way to make processes.
type Harness struct {
	// New returns a fresh watcher; the contract closes it.
	New func(t *testing.T) broker.ExitWatcher
	// Start starts a process that runs until end is called; end returns
	// once the process has exited. The harness cleans up at test end.
	Start func(t *testing.T) (p broker.Process, end func())
}

// Run runs the contract against h.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		test func(t *testing.T, h Harness, w broker.ExitWatcher)
	}{
		{"ExitReportedOnce", exitReportedOnce},
		{"DuplicateAddIsOneWatch", duplicateAdd},
		{"AddOfExitedReportsAtOnce", addExited},
		{"AddOfReusedPIDReportsAtOnce", addReused},
		{"RemoveStopsReport", remove},
		{"AddInvalid", addInvalid},
		{"Close", closeWatcher},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := h.New(t)
			t.Cleanup(func() {
				if err := w.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.test(t, h, w)
		})
	}
}

// next returns the next exit, failing the test if none comes.
func next(t *testing.T, w broker.ExitWatcher) broker.Process {
	t.Helper()
	select {
	case p, ok := <-w.Exits():
		if !ok {
			t.Fatal("Exits closed while an exit was due")
		}
		return p
	case <-time.After(failAfter):
		t.Fatalf("no exit reported within %v", failAfter)
	}
	panic("unreachable")
}

func mustAdd(t *testing.T, w broker.ExitWatcher, p broker.Process) {
	t.Helper()
	if err := w.Add(p); err != nil {
		t.Fatalf("Add(%v): %v", p, err)
	}
}

// sentinel watches a new process and ends it: its exit must be the next
// one reported, which proves nothing else (a second report, a removed
// process) was queued before it.
func sentinel(t *testing.T, h Harness, w broker.ExitWatcher, why string) {
	t.Helper()
	s, end := h.Start(t)
	mustAdd(t, w, s)
	end()
	if got := next(t, w); !got.Same(s) {
		t.Fatalf("exit = %v; want only the sentinel %v: %s", got, s, why)
	}
}

func exitReportedOnce(t *testing.T, h Harness, w broker.ExitWatcher) {
	p, end := h.Start(t)
	p.Name = "as given to Add"
	mustAdd(t, w, p)
	end()
	if got := next(t, w); got != p {
		t.Fatalf("exit = %+v; want the process as given to Add, %+v", got, p)
	}
	sentinel(t, h, w, "an exit is reported once")
}

func duplicateAdd(t *testing.T, h Harness, w broker.ExitWatcher) {
	p, end := h.Start(t)
	mustAdd(t, w, p)
	mustAdd(t, w, p)
	end()
	if got := next(t, w); !got.Same(p) {
		t.Fatalf("exit = %v; want %v", got, p)
	}
	sentinel(t, h, w, "two Adds of one process are one watch")
}

func addExited(t *testing.T, h Harness, w broker.ExitWatcher) {
	p, end := h.Start(t)
	end()
	mustAdd(t, w, p)
	if got := next(t, w); !got.Same(p) {
		t.Fatalf("exit = %v; want %v, added after it exited", got, p)
	}
	sentinel(t, h, w, "an exited process is reported once")
}

func addReused(t *testing.T, h Harness, w broker.ExitWatcher) {
	live, _ := h.Start(t)
	old := live
	old.StartTime = live.StartTime.Add(-time.Hour) // the PID's earlier process
	mustAdd(t, w, old)
	if got := next(t, w); !got.Same(old) {
		t.Fatalf("exit = %v; want %v, whose PID now names %v", got, old, live)
	}
	sentinel(t, h, w, "the live process under a reused PID is not watched")
}

func remove(t *testing.T, h Harness, w broker.ExitWatcher) {
	p, end := h.Start(t)
	mustAdd(t, w, p)
	w.Remove(p)
	w.Remove(broker.Process{PID: p.PID, StartTime: p.StartTime.Add(time.Hour)}) // not p: harmless
	end()
	sentinel(t, h, w, "a removed process is not reported")
}

func addInvalid(t *testing.T, h Harness, w broker.ExitWatcher) {
	for _, pid := range []int{0, -1} {
		if err := w.Add(broker.Process{PID: pid}); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Add(pid %d) = %v; want ErrInvalid", pid, err)
		}
	}
}

func closeWatcher(t *testing.T, h Harness, w broker.ExitWatcher) {
	live, _ := h.Start(t)
	mustAdd(t, w, live)
	// Exits nobody reads must not hold Close up.
	for range 3 {
		p, end := h.Start(t)
		end()
		mustAdd(t, w, p)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	timeout := time.After(failAfter)
	for open := true; open; {
		select {
		case _, open = <-w.Exits():
		case <-timeout:
			t.Fatalf("Exits not closed within %v of Close", failAfter)
		}
	}
	if err := w.Add(live); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Add after Close = %v; want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}
