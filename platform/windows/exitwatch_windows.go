package windows

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

const (
	// groupSize is how many processes one waiter goroutine watches:
	// WaitForMultipleObjects takes at most 64 (MAXIMUM_WAIT_OBJECTS)
	// handles, and each waiter keeps one for its wake event.
	groupSize = 64 - 1
	// defaultPollInterval applies when NewExitWatcher is given zero.
	defaultPollInterval = time.Second
)

// NewExitWatcher returns a watcher that reports when watched processes exit.
//
// It waits on process handles: a goroutine per 63 processes blocks in
// WaitForMultipleObjects on their handles plus a wake event that Add, Remove
// and Close signal. That costs one OS thread per 63 processes and keeps every
// wait in Go. RegisterWaitForSingleObject would share the system thread pool
// instead, but its callbacks would enter Go on foreign threads and need
// unregistration handshakes on every Remove; a port broker watches tens of
// processes, not thousands.
//
// A process whose handle may be queried but not waited on (some protected
// or other users' processes) is polled every pollInterval instead; zero
// means one second.
func (h *Host) NewExitWatcher(pollInterval time.Duration) (broker.ExitWatcher, error) {
	if pollInterval < 0 {
		return nil, &broker.FieldError{Field: "poll interval", Rule: "must not be negative"}
	}
	if pollInterval == 0 {
		pollInterval = defaultPollInterval
	}
	return newExitWatcher(h.Lookup, pollInterval), nil
}

// procKey identifies a process the way broker.Process.Same does.
type procKey struct {
	pid   int
	start int64 // Unix milliseconds
}

func keyOf(p broker.Process) procKey { return procKey{p.PID, p.StartTime.UnixMilli()} }

type exitWatcher struct {
	lookup func(pid int) (broker.Process, error)
	poll   time.Duration

	exits chan broker.Process
	done  chan struct{} // closed by Close
	kick  chan struct{} // holds a token while pending may be non-empty
	wg    sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	watched map[procKey]*watch
	groups  []*waitGroup
	polling bool // the poll goroutine runs
	// pending are exits waiting for the consumer, in the order seen.
	pending []broker.Process
}

// watch is one watched process. Its fields change under exitWatcher.mu.
type watch struct {
	p broker.Process
	// h is the process handle, closed by g's goroutine; zero when polled.
	h xwin.Handle
	g *waitGroup
	// done is set when the process exited or was removed.
	done bool
}

// waitGroup is the set of handles one goroutine waits on.
type waitGroup struct {
	wake    xwin.Handle // auto-reset event
	watches []*watch
}

func newExitWatcher(lookup func(int) (broker.Process, error), poll time.Duration) *exitWatcher {
	w := &exitWatcher{
		lookup:  lookup,
		poll:    poll,
		exits:   make(chan broker.Process),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		watched: make(map[procKey]*watch),
	}
	w.wg.Add(1)
	go w.deliver()
	return w
}

// Add watches p. A process that has already exited, or whose PID now names
// a younger process, is reported on Exits at once. Adding a watched process
// again does nothing.
func (w *exitWatcher) Add(p broker.Process) error {
	if p.PID <= 0 {
		return &broker.FieldError{Field: "pid", Rule: "must be positive"}
	}
	if p.StartTime.IsZero() {
		return &broker.FieldError{Field: "start time", Rule: "must be set, so that a reused PID is not watched in place of the process"}
	}
	w.mu.Lock()
	closed, watched := w.closed, w.watched[keyOf(p)] != nil
	w.mu.Unlock()
	switch {
	case closed:
		return broker.ErrClosed
	case watched:
		return nil
	}

	hp, canWait, err := openProcess(p.PID)
	switch {
	case errors.Is(err, broker.ErrNoProcess):
		return w.exited(p)
	case err != nil:
		return fmt.Errorf("watch %s: %w", p, err)
	}
	start, err := startTime(hp)
	switch {
	case err != nil:
		xwin.CloseHandle(hp)
		return fmt.Errorf("watch %s: %w", p, err)
	case !p.Same(broker.Process{PID: p.PID, StartTime: start}):
		// The PID was reused: the process p named is gone.
		xwin.CloseHandle(hp)
		return w.exited(p)
	case !canWait:
		xwin.CloseHandle(hp)
		return w.addPolled(p)
	}
	return w.addHandle(p, hp)
}

// addHandle watches h, a handle that becomes signalled when p exits, and
// takes ownership of it.
func (w *exitWatcher) addHandle(p broker.Process, h xwin.Handle) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.watched[keyOf(p)] != nil {
		xwin.CloseHandle(h)
		if w.closed {
			return broker.ErrClosed
		}
		return nil
	}
	var g *waitGroup
	for _, c := range w.groups {
		if len(c.watches) < groupSize {
			g = c
			break
		}
	}
	if g == nil {
		wake, err := xwin.CreateEvent(nil, 0, 0, nil)
		if err != nil {
			xwin.CloseHandle(h)
			return fmt.Errorf("watch %s: create wake event: %w", p, err)
		}
		g = &waitGroup{wake: wake}
		w.groups = append(w.groups, g)
		w.wg.Add(1)
		go w.wait(g)
	}
	wt := &watch{p: p, h: h, g: g}
	g.watches = append(g.watches, wt)
	w.watched[keyOf(p)] = wt
	if err := xwin.SetEvent(g.wake); err != nil {
		// The waiter would not see the handle; it closes it when it next
		// looks.
		wt.done = true
		delete(w.watched, keyOf(p))
		return fmt.Errorf("watch %s: wake exit waiter: %w", p, err)
	}
	return nil
}

func (w *exitWatcher) addPolled(p broker.Process) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return broker.ErrClosed
	case w.watched[keyOf(p)] != nil:
		return nil
	}
	w.watched[keyOf(p)] = &watch{p: p}
	w.startPolling()
	return nil
}

// startPolling starts the poll goroutine once. w.mu must be held.
func (w *exitWatcher) startPolling() {
	if !w.polling {
		w.polling = true
		w.wg.Add(1)
		go w.pollLoop()
	}
}

// exited reports p, found gone when it was added.
func (w *exitWatcher) exited(p broker.Process) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := keyOf(p)
	switch {
	case w.closed:
		return broker.ErrClosed
	case w.watched[k] != nil, slices.ContainsFunc(w.pending, func(q broker.Process) bool { return keyOf(q) == k }):
		return nil
	}
	w.queue(p)
	return nil
}

// Remove stops watching p. Its exit is not reported afterwards, unless the
// consumer is already being handed it.
func (w *exitWatcher) Remove(p broker.Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	k := keyOf(p)
	if wt := w.watched[k]; wt != nil {
		delete(w.watched, k)
		wt.done = true
		if wt.g != nil {
			// Let the group's goroutine close the handle; it may be
			// waiting on it right now.
			xwin.SetEvent(wt.g.wake)
		}
	}
	w.pending = slices.DeleteFunc(w.pending, func(q broker.Process) bool { return keyOf(q) == k })
}

// Exits delivers each watched process once when it exits. It is closed by
// Close.
func (w *exitWatcher) Exits() <-chan broker.Process { return w.exits }

// Close stops watching, waits for the watcher's goroutines and closes Exits.
// Exits not yet received are dropped.
func (w *exitWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	var errs []error
	for _, g := range w.groups {
		if err := xwin.SetEvent(g.wake); err != nil {
			errs = append(errs, fmt.Errorf("wake exit waiter: %w", err))
		}
	}
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()
	close(w.exits)
	return errors.Join(errs...)
}

// queue hands p to the delivery goroutine. w.mu must be held.
func (w *exitWatcher) queue(p broker.Process) {
	w.pending = append(w.pending, p)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// finish marks wt exited and queues its exit, unless it was removed. w.mu
// must be held.
func (w *exitWatcher) finish(wt *watch) {
	if wt.done {
		return
	}
	wt.done = true
	delete(w.watched, keyOf(wt.p))
	w.queue(wt.p)
}

// deliver sends pending exits to the consumer, however slowly it reads, so
// waiters never block on it and no exit is dropped.
func (w *exitWatcher) deliver() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.mu.Unlock()
			select {
			case <-w.kick:
				continue
			case <-w.done:
				return
			}
		}
		p := w.pending[0]
		w.pending = w.pending[1:]
		w.mu.Unlock()
		select {
		case w.exits <- p:
		case <-w.done:
			return
		}
	}
}

// wait waits on g's handles until g is empty or the watcher closes. It is
// the only closer of g's handles, so none is closed while it waits on it.
func (w *exitWatcher) wait(g *waitGroup) {
	defer w.wg.Done()
	handles := make([]xwin.Handle, 0, groupSize+1)
	var ws []*watch
	for {
		w.mu.Lock()
		g.watches = slices.DeleteFunc(g.watches, func(wt *watch) bool {
			if wt.done {
				xwin.CloseHandle(wt.h)
			}
			return wt.done
		})
		if w.closed || len(g.watches) == 0 {
			w.dropGroup(g)
			w.mu.Unlock()
			return
		}
		handles = append(handles[:0], g.wake)
		ws = append(ws[:0], g.watches...)
		for _, wt := range ws {
			handles = append(handles, wt.h)
		}
		w.mu.Unlock()

		ev, err := xwin.WaitForMultipleObjects(handles, false, xwin.INFINITE)
		if err != nil {
			// Never expected: every handle is open and waitable. Polling
			// still finds the exits.
			w.mu.Lock()
			w.dropGroup(g)
			if !w.closed {
				w.startPolling()
			}
			w.mu.Unlock()
			return
		}
		if i := int(ev - xwin.WAIT_OBJECT_0); i >= 1 && i < len(handles) {
			w.mu.Lock()
			w.finish(ws[i-1])
			w.mu.Unlock()
		}
	}
}

// dropGroup closes g's handles and forgets g; its live watches are polled
// from then on, if the watcher still runs. w.mu must be held.
func (w *exitWatcher) dropGroup(g *waitGroup) {
	for _, wt := range g.watches {
		xwin.CloseHandle(wt.h)
		wt.h, wt.g = 0, nil
	}
	g.watches = nil
	xwin.CloseHandle(g.wake)
	w.groups = slices.DeleteFunc(w.groups, func(c *waitGroup) bool { return c == g })
}

// pollLoop looks up polled processes every interval until Close.
func (w *exitWatcher) pollLoop() {
	defer w.wg.Done()
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		w.mu.Lock()
		var polled []*watch
		for _, wt := range w.watched {
			if wt.g == nil {
				polled = append(polled, wt)
			}
		}
		w.mu.Unlock()
		for _, wt := range polled {
			q, err := w.lookup(wt.p.PID)
			// Any other error leaves the process's fate unknown: look again.
			if gone := errors.Is(err, broker.ErrNoProcess) || err == nil && !q.Same(wt.p); !gone {
				continue
			}
			w.mu.Lock()
			w.finish(wt)
			w.mu.Unlock()
		}
	}
}
