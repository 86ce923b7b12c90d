package windows

import (
	"errors"
	"os"
	"testing"
	"time"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/exitwatchtest"
)

// waitTimeout only keeps a broken watcher from hanging the test run.
const waitTimeout = time.Minute

func newTestWatcher(t *testing.T) broker.ExitWatcher {
	t.Helper()
	w, err := New().NewExitWatcher(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func nextExit(t *testing.T, w broker.ExitWatcher) broker.Process {
	t.Helper()
	select {
	case p, ok := <-w.Exits():
		if !ok {
			t.Fatal("Exits closed while waiting for an exit")
		}
		return p
	case <-time.After(waitTimeout):
		t.Fatal("no exit reported")
	}
	panic("unreachable")
}

func TestExitWatcherSeesKill(t *testing.T) {
	h := New()
	w := newTestWatcher(t)
	var procs []broker.Process
	for range 2 {
		cmd := startChild(t)
		p, err := h.Lookup(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(p); err != nil {
			t.Fatal(err)
		}
		// Adding again watches it once.
		if err := w.Add(p); err != nil {
			t.Fatal(err)
		}
		kill(t, cmd)
		procs = append(procs, p)
	}
	for _, want := range procs {
		if got := nextExit(t, w); !got.Same(want) {
			t.Errorf("exit of %v reported, want %v", got, want)
		}
	}
}

func TestExitWatcherAddGone(t *testing.T) {
	h := New()
	self, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := startChild(t)
	dead, err := h.Lookup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	kill(t, cmd)
	// Our own PID with an earlier start time stands for a process whose PID
	// was reused.
	reused := broker.Process{PID: self.PID, StartTime: self.StartTime.Add(-time.Hour)}

	w := newTestWatcher(t)
	for _, p := range []broker.Process{dead, reused} {
		if err := w.Add(p); err != nil {
			t.Fatalf("Add(%v): %v", p, err)
		}
		if got := nextExit(t, w); !got.Same(p) {
			t.Errorf("exit of %v reported, want %v", got, p)
		}
	}
}

func TestExitWatcherBadInput(t *testing.T) {
	w := newTestWatcher(t)
	for _, p := range []broker.Process{
		{PID: 0, StartTime: time.Now()},
		{PID: -4, StartTime: time.Now()},
		{PID: os.Getpid()},
	} {
		var fe *broker.FieldError
		if err := w.Add(p); !errors.As(err, &fe) || !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Add(%+v) = %v, want a field error", p, err)
		}
	}
	if _, err := New().NewExitWatcher(-time.Second); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("NewExitWatcher(-1s) = %v, want ErrInvalid", err)
	}
}

// TestExitWatcherManyHandles watches events rather than processes, to fill
// several 63-handle groups cheaply, and checks that removed handles are
// never reported.
func TestExitWatcherManyHandles(t *testing.T) {
	const n = 3*groupSize + 5
	w := newExitWatcher(New().Lookup, time.Hour)
	t.Cleanup(func() { w.Close() })
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	procs := make([]broker.Process, n)
	events := make([]xwin.Handle, n)
	for i := range procs {
		procs[i] = broker.Process{PID: 4 * (i + 1), StartTime: base.Add(time.Duration(i) * time.Second)}
		ev, err := xwin.CreateEvent(nil, 1, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The watcher owns and closes its copy.
		var dup xwin.Handle
		if err := xwin.DuplicateHandle(xwin.CurrentProcess(), ev, xwin.CurrentProcess(), &dup, 0, false, xwin.DUPLICATE_SAME_ACCESS); err != nil {
			t.Fatal(err)
		}
		events[i] = ev
		t.Cleanup(func() { xwin.CloseHandle(ev) })
		if err := w.addHandle(procs[i], dup); err != nil {
			t.Fatal(err)
		}
	}
	removed := map[int]bool{}
	for i := 0; i < n; i += 7 {
		w.Remove(procs[i])
		removed[procs[i].PID] = true
	}
	for _, ev := range events {
		if err := xwin.SetEvent(ev); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[int]bool{}
	for range n - len(removed) {
		p := nextExit(t, w)
		if removed[p.PID] || seen[p.PID] {
			t.Fatalf("exit of %v reported; removed %v, already seen %v", p, removed[p.PID], seen[p.PID])
		}
		seen[p.PID] = true
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if p, ok := <-w.Exits(); ok {
		t.Errorf("exit of %v reported after Close, want Exits closed", p)
	}
	if err := w.Add(procs[1]); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestExitWatcherPolls covers processes that may be queried but not waited on.
func TestExitWatcherPolls(t *testing.T) {
	p := broker.Process{PID: 1000, StartTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	alive := make(chan bool, 1)
	alive <- true
	lookup := func(pid int) (broker.Process, error) {
		if pid != p.PID {
			t.Errorf("looked up pid %d, want %d", pid, p.PID)
		}
		select {
		case a := <-alive:
			if a {
				return p, nil
			}
		default:
		}
		return broker.Process{}, broker.ErrNoProcess
	}
	w := newExitWatcher(lookup, time.Millisecond)
	t.Cleanup(func() { w.Close() })
	if err := w.addPolled(p); err != nil {
		t.Fatal(err)
	}
	if got := nextExit(t, w); !got.Same(p) {
		t.Errorf("exit of %v reported, want %v", got, p)
	}
}

// The Windows watcher keeps the contract the broker's fake is held to.
func TestExitWatcherContract(t *testing.T) {
	h := New()
	exitwatchtest.Run(t, exitwatchtest.Harness{
		New: func(t *testing.T) broker.ExitWatcher {
			w, err := h.NewExitWatcher(0)
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Start: func(t *testing.T) (broker.Process, func()) {
			cmd := startChild(t)
			return lookup(t, cmd.Process.Pid), func() { kill(t, cmd) }
		},
	})
}
