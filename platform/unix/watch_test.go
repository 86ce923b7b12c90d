//go:build linux || darwin

package unix

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/exitwatchtest"
)

// failAfter bounds every wait for an exit; it is a failure bound, not a
// timing assertion.
const failAfter = 10 * time.Second

// watchers are the exit watchers under test: the one the host picks and
// the polling fallback.
var watchers = []struct {
	name string
	new  func(h *Host) (broker.ExitWatcher, error)
}{
	{"native", func(h *Host) (broker.ExitWatcher, error) { return h.NewExitWatcher(10 * time.Millisecond) }},
	{"poll", func(h *Host) (broker.ExitWatcher, error) { return newPollWatcher(h.Lookup, 10*time.Millisecond), nil }},
}

// forEachWatcher runs test against each watcher, closed at cleanup.
func forEachWatcher(t *testing.T, test func(t *testing.T, h *Host, w broker.ExitWatcher)) {
	for _, impl := range watchers {
		t.Run(impl.name, func(t *testing.T) {
			h := New()
			w, err := impl.new(h)
			if err != nil {
				t.Fatalf("new watcher: %v", err)
			}
			t.Cleanup(func() {
				if err := w.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			test(t, h, w)
		})
	}
}

// nextExit returns the next exit, failing the test if none comes.
func nextExit(t *testing.T, w broker.ExitWatcher) broker.Process {
	t.Helper()
	select {
	case p, ok := <-w.Exits():
		if !ok {
			t.Fatal("Exits closed")
		}
		return p
	case <-time.After(failAfter):
		t.Fatalf("no exit within %v", failAfter)
	}
	return broker.Process{}
}

// noExit fails the test if an exit is ready now.
func noExit(t *testing.T, w broker.ExitWatcher) {
	t.Helper()
	select {
	case p := <-w.Exits():
		t.Fatalf("unexpected exit of %v", p)
	default:
	}
}

func mustAdd(t *testing.T, w broker.ExitWatcher, p broker.Process) {
	t.Helper()
	if err := w.Add(p); err != nil {
		t.Fatalf("Add(%v): %v", p, err)
	}
}

// Every watcher keeps the contract the broker's fake is held to.
func TestWatchContract(t *testing.T) {
	for _, impl := range watchers {
		t.Run(impl.name, func(t *testing.T) {
			h := New()
			exitwatchtest.Run(t, exitwatchtest.Harness{
				New: func(t *testing.T) broker.ExitWatcher {
					w, err := impl.new(h)
					if err != nil {
						t.Fatalf("new watcher: %v", err)
					}
					return w
				},
				Start: func(t *testing.T) (broker.Process, func()) {
					c := runChild(t)
					return c.lookup(t, h), func() { c.killAndReap(t) }
				},
			})
		})
	}
}

// A zombie has exited: adding it reports its exit at once.
func TestWatchAddZombie(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		c := runChild(t)
		p := c.lookup(t, h)
		c.kill(t)
		waitZombie(t, c.pid())
		mustAdd(t, w, p)
		if got := nextExit(t, w); got != p {
			t.Errorf("exit = %+v; want %+v", got, p)
		}
	})
}

// One watcher follows many processes without a goroutine for each.
func TestWatchMany(t *testing.T) {
	const n = 200
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		children := make([]*child, n)
		for i := range children {
			children[i] = startChild(t)
		}
		before := runtime.NumGoroutine()
		want := make(map[int]broker.Process, n)
		for _, c := range children {
			c.wait(t)
			p := c.lookup(t, h)
			mustAdd(t, w, p)
			want[p.PID] = p
		}
		if got := runtime.NumGoroutine(); got > before {
			t.Errorf("watching %d processes took %d more goroutines; want none", n, got-before)
		}
		for _, c := range children {
			c.kill(t)
		}
		for range n {
			got := nextExit(t, w)
			p, ok := want[got.PID]
			if !ok || !p.Same(got) {
				t.Fatalf("exit of %v: not watched, or reported twice", got)
			}
			delete(want, got.PID)
		}
		noExit(t, w)
	})
}

func TestNewExitWatcherInterval(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		w, err := New().NewExitWatcher(d)
		if !errors.Is(err, broker.ErrInvalid) {
			if w != nil {
				w.Close()
			}
			t.Errorf("NewExitWatcher(%v) = %v; want ErrInvalid", d, err)
		}
	}
}
