//go:build unix

package unix

import (
	"fmt"
	"sync"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// pollWatcher finds exits by looking every watched process up at an
// interval. It is the fallback where the kernel cannot notify exits (Linux
// without pidfd_open, or under a seccomp policy that forbids it).
type pollWatcher struct {
	lookup   func(int) (broker.Process, error)
	interval time.Duration
	queue    *exitQueue
	ownQueue bool // closed with the watcher; false when lent by another watcher
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	closed  bool
	watched map[procKey]broker.Process
}

func newPollWatcher(lookup func(int) (broker.Process, error), interval time.Duration) *pollWatcher {
	w := newPollWatcherOn(lookup, interval, startExitQueue())
	w.ownQueue = true
	return w
}

// newPollWatcherOn returns a poll watcher that reports into queue, which
// its caller owns: the pidfd watcher polls through it the processes it
// cannot open a pidfd for.
func newPollWatcherOn(lookup func(int) (broker.Process, error), interval time.Duration, queue *exitQueue) *pollWatcher {
	w := &pollWatcher{
		lookup:   lookup,
		interval: interval,
		queue:    queue,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		watched:  make(map[procKey]broker.Process),
	}
	go w.run()
	return w
}

// Add watches p. If p has already exited, its exit is delivered at once.
func (w *pollWatcher) Add(p broker.Process) error {
	if err := checkWatchable(p); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWatcherClosed
	}
	if _, ok := w.watched[keyOf(p)]; ok {
		return nil
	}
	cur, err := w.lookup(p.PID)
	if exited(p, cur, err) {
		w.queue.push(p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch %v: %w", p, err)
	}
	w.watched[keyOf(p)] = p
	return nil
}

// Remove stops watching p. An exit found before Remove may still arrive.
func (w *pollWatcher) Remove(p broker.Process) {
	w.mu.Lock()
	delete(w.watched, keyOf(p))
	w.mu.Unlock()
}

// Exits delivers each watched exit once. It is closed by Close.
func (w *pollWatcher) Exits() <-chan broker.Process { return w.queue.out }

// Close stops watching, waits for the watcher's goroutines and closes Exits.
func (w *pollWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	if w.ownQueue {
		w.queue.close()
	}
	return nil
}

// has reports whether p is watched.
func (w *pollWatcher) has(p broker.Process) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.watched[keyOf(p)]
	return ok
}

func (w *pollWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var batch []broker.Process
	for {
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
		// Look processes up without the lock, so Add and Remove stay quick.
		batch = batch[:0]
		w.mu.Lock()
		for _, p := range w.watched {
			batch = append(batch, p)
		}
		w.mu.Unlock()
		for _, p := range batch {
			cur, err := w.lookup(p.PID)
			if !exited(p, cur, err) {
				continue
			}
			w.mu.Lock()
			if _, ok := w.watched[keyOf(p)]; ok {
				delete(w.watched, keyOf(p))
				w.queue.push(p)
			}
			w.mu.Unlock()
		}
	}
}
