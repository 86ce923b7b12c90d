package unix

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// NewExitWatcher returns a watcher that learns of exits from the kernel:
// one kqueue with an EVFILT_PROC NOTE_EXIT filter per process, waited on by
// one goroutine. pollInterval is unused here but checked, as elsewhere.
func (h *Host) NewExitWatcher(pollInterval time.Duration) (broker.ExitWatcher, error) {
	if err := checkPollInterval(pollInterval); err != nil {
		return nil, err
	}
	return newKqueueWatcher(h.Lookup)
}

// kqueueWatcher watches processes by PID with kqueue. A PID names one live
// process at a time, so watches are kept by PID, and an exit event is
// checked against the process's start time before it is reported: the
// event may be stale, read just before the PID was watched again.
type kqueueWatcher struct {
	lookup func(int) (broker.Process, error)
	kq     int
	wake   [2]int // a pipe; Close writes to wake[1] to stop the loop
	queue  *exitQueue
	done   chan struct{}

	mu      sync.Mutex
	closed  bool
	watched map[int]broker.Process
	loopErr error
}

func newKqueueWatcher(lookup func(int) (broker.Process, error)) (*kqueueWatcher, error) {
	syscall.ForkLock.RLock()
	kq, err := xunix.Kqueue()
	if err == nil {
		xunix.CloseOnExec(kq)
	}
	var wake [2]int
	if err == nil {
		if err = xunix.Pipe(wake[:]); err != nil {
			xunix.Close(kq)
		} else {
			xunix.CloseOnExec(wake[0])
			xunix.CloseOnExec(wake[1])
		}
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("exit watcher: %w", err)
	}
	var ev xunix.Kevent_t
	xunix.SetKevent(&ev, wake[0], xunix.EVFILT_READ, xunix.EV_ADD)
	if _, err := xunix.Kevent(kq, []xunix.Kevent_t{ev}, nil, nil); err != nil {
		xunix.Close(wake[0])
		xunix.Close(wake[1])
		xunix.Close(kq)
		return nil, fmt.Errorf("exit watcher: kevent: %w", err)
	}
	w := &kqueueWatcher{
		lookup:  lookup,
		kq:      kq,
		wake:    wake,
		queue:   startExitQueue(),
		done:    make(chan struct{}),
		watched: make(map[int]broker.Process),
	}
	go w.run()
	return w, nil
}

// Add watches p. If p has already exited, or its PID now names another
// process, its exit is delivered at once.
func (w *kqueueWatcher) Add(p broker.Process) error {
	if err := checkWatchable(p); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWatcherClosed
	}
	old, hadOld := w.watched[p.PID]
	if hadOld && old.Same(p) {
		return nil
	}
	regErr := w.register(p.PID, xunix.EV_ADD|xunix.EV_ONESHOT)
	if regErr != nil && !errors.Is(regErr, xunix.ESRCH) {
		return fmt.Errorf("watch %v: kevent: %w", p, regErr)
	}
	// The PID may have been reused before the filter was added, leaving it
	// on another process; the start time tells.
	cur, err := w.lookup(p.PID)
	if hadOld && exited(old, cur, err) {
		delete(w.watched, p.PID)
		w.queue.push(old)
		hadOld = false
	}
	if regErr != nil || exited(p, cur, err) {
		if !hadOld {
			w.register(p.PID, xunix.EV_DELETE)
		}
		w.queue.push(p)
		return nil
	}
	if err != nil {
		if !hadOld {
			w.register(p.PID, xunix.EV_DELETE)
		}
		return fmt.Errorf("watch %v: %w", p, err)
	}
	w.watched[p.PID] = p
	return nil
}

func (w *kqueueWatcher) register(pid int, flags int) error {
	var ev xunix.Kevent_t
	xunix.SetKevent(&ev, pid, xunix.EVFILT_PROC, flags)
	ev.Fflags = xunix.NOTE_EXIT
	_, err := xunix.Kevent(w.kq, []xunix.Kevent_t{ev}, nil, nil)
	return err
}

// Remove stops watching p. An exit found before Remove may still arrive.
func (w *kqueueWatcher) Remove(p broker.Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.watched[p.PID]; ok && cur.Same(p) {
		delete(w.watched, p.PID)
		w.register(p.PID, xunix.EV_DELETE)
	}
}

// Exits delivers each watched exit once. It is closed by Close.
func (w *kqueueWatcher) Exits() <-chan broker.Process { return w.queue.out }

// Close stops watching, waits for the watcher's goroutines, closes every
// descriptor and closes Exits. It returns the error that stopped the
// watcher early, if any.
func (w *kqueueWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()

	if _, err := xunix.Write(w.wake[1], []byte{0}); err != nil {
		return fmt.Errorf("exit watcher: wake: %w", err)
	}
	<-w.done
	w.mu.Lock()
	err := w.loopErr
	clear(w.watched)
	w.mu.Unlock()
	xunix.Close(w.wake[0])
	xunix.Close(w.wake[1])
	xunix.Close(w.kq) // drops every filter
	w.queue.close()
	return err
}

func (w *kqueueWatcher) run() {
	defer close(w.done)
	events := make([]xunix.Kevent_t, 64)
	for {
		n, err := xunix.Kevent(w.kq, nil, events, nil)
		if err == xunix.EINTR {
			continue
		}
		if err != nil {
			w.mu.Lock()
			w.loopErr = fmt.Errorf("exit watcher: kevent: %w", err)
			w.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			if ev.Filter == xunix.EVFILT_READ {
				return
			}
			if ev.Filter != xunix.EVFILT_PROC || ev.Fflags&xunix.NOTE_EXIT == 0 {
				continue
			}
			pid := int(ev.Ident)
			w.mu.Lock()
			if p, ok := w.watched[pid]; ok {
				if cur, err := w.lookup(pid); exited(p, cur, err) {
					delete(w.watched, pid)
					w.queue.push(p)
				}
			}
			w.mu.Unlock()
		}
	}
}

// threadGroup is Linux's; elsewhere a PID never names a thread.
func threadGroup(int) (int, bool) { return 0, false }
