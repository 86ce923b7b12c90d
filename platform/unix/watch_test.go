//go:build linux || darwin

package unix

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
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

// waitClosed drains Exits until it is closed, failing the test if it is not.
func waitClosed(t *testing.T, w broker.ExitWatcher) {
	t.Helper()
	timeout := time.After(failAfter)
	for {
		select {
		case _, ok := <-w.Exits():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("Exits not closed within %v of Close", failAfter)
		}
	}
}

func mustAdd(t *testing.T, w broker.ExitWatcher, p broker.Process) {
	t.Helper()
	if err := w.Add(p); err != nil {
		t.Fatalf("Add(%v): %v", p, err)
	}
}

func TestWatchKill(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		c := runChild(t)
		p := c.lookup(t, h)
		p.Name = "as given to Add"
		mustAdd(t, w, p)
		mustAdd(t, w, p) // a second Add of the same process is one watch
		c.kill(t)
		if got := nextExit(t, w); got != p {
			t.Errorf("exit = %+v; want the process given to Add, %+v", got, p)
		}
		// Reaping it reports nothing more.
		c.cmd.Wait()
		another := runChild(t)
		ap := another.lookup(t, h)
		mustAdd(t, w, ap)
		another.kill(t)
		if got := nextExit(t, w); !got.Same(ap) {
			t.Errorf("exit = %v; want only %v, the exit of %v reported once", got, ap, p)
		}
	})
}

func TestWatchRemove(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		removed, kept := runChild(t), runChild(t)
		rp, kp := removed.lookup(t, h), kept.lookup(t, h)
		mustAdd(t, w, rp)
		mustAdd(t, w, kp)
		w.Remove(rp)
		w.Remove(broker.Process{PID: kp.PID}) // another start time: not kp
		removed.killAndReap(t)
		kept.kill(t)
		if got := nextExit(t, w); !got.Same(kp) {
			t.Fatalf("exit = %v; want %v (the exit of removed %v must not come)", got, kp, rp)
		}
		noExit(t, w)
	})
}

func TestWatchAddExited(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		tests := []struct {
			name string
			proc func(t *testing.T) broker.Process
		}{
			{"reaped", func(t *testing.T) broker.Process {
				c := runChild(t)
				p := c.lookup(t, h)
				c.killAndReap(t)
				return p
			}},
			{"zombie", func(t *testing.T) broker.Process {
				c := runChild(t)
				p := c.lookup(t, h)
				c.kill(t)
				waitZombie(t, c.pid())
				return p
			}},
			{"PID reused", func(t *testing.T) broker.Process {
				// The live process under the PID started at another time.
				c := runChild(t)
				p := c.lookup(t, h)
				p.StartTime = p.StartTime.Add(-time.Second)
				return p
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := tt.proc(t)
				mustAdd(t, w, p)
				if got := nextExit(t, w); got != p {
					t.Errorf("exit = %+v; want %+v", got, p)
				}
			})
		}
	})
}

func TestWatchAddInvalid(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		for _, pid := range []int{0, -1} {
			if err := w.Add(broker.Process{PID: pid}); !errors.Is(err, broker.ErrInvalid) {
				t.Errorf("Add(pid %d) = %v; want ErrInvalid", pid, err)
			}
		}
	})
}

func TestWatchClose(t *testing.T) {
	forEachWatcher(t, func(t *testing.T, h *Host, w broker.ExitWatcher) {
		live := runChild(t)
		mustAdd(t, w, live.lookup(t, h))
		// Exits nobody reads must not hold Close up.
		for range 3 {
			dead := runChild(t)
			p := dead.lookup(t, h)
			dead.killAndReap(t)
			mustAdd(t, w, p)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitClosed(t, w)
		if err := w.Add(live.lookup(t, h)); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Add after Close = %v; want ErrClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close = %v; want nil", err)
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
