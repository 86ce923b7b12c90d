//go:build unix

package unix

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// errWatcherClosed is returned by Add after Close.
var errWatcherClosed = fmt.Errorf("exit watcher is closed: %w", broker.ErrClosed)

// procKey identifies a watched process.
type procKey struct {
	pid   int
	start int64 // Unix milliseconds, the precision of Process.Same
}

func keyOf(p broker.Process) procKey {
	return procKey{pid: p.PID, start: p.StartTime.UnixMilli()}
}

func checkWatchable(p broker.Process) error {
	if err := checkPID(p); err != nil {
		return err
	}
	return checkNotThread(p)
}

func checkPID(p broker.Process) error {
	if p.PID <= 0 {
		return &broker.FieldError{Field: "pid", Rule: fmt.Sprintf("%d: must be positive", p.PID)}
	}
	return nil
}

// checkNotThread refuses a thread id: a thread's exit is not its
// process's, so watching it would reclaim a lease while the process runs
// on, or never.
func checkNotThread(p broker.Process) error {
	if tgid, ok := threadGroup(p.PID); ok && tgid != p.PID {
		return &broker.FieldError{Field: "pid", Rule: fmt.Sprintf("%d is a thread of process %d, not a process; give the process id", p.PID, tgid)}
	}
	return nil
}

func checkPollInterval(d time.Duration) error {
	if d <= 0 {
		return &broker.FieldError{Field: "poll interval", Rule: fmt.Sprintf("%v: must be positive", d)}
	}
	return nil
}

// exited reports whether a Lookup of p's PID that returned cur and err shows
// p is gone: no process, or another one under its PID. Any other error says
// nothing either way.
func exited(p, cur broker.Process, err error) bool {
	if err != nil {
		return errors.Is(err, broker.ErrNoProcess)
	}
	return !cur.Same(p)
}

// exitQueue hands exits to the consumer of Exits. It holds any number of
// them, so a slow consumer never blocks the watcher that found them and no
// exit is dropped; exits still queued at close are discarded.
type exitQueue struct {
	out  chan broker.Process
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	items []broker.Process
}

func startExitQueue() *exitQueue {
	q := &exitQueue{
		out:  make(chan broker.Process),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q
}

// push queues p. It never blocks, and is harmless after close.
func (q *exitQueue) push(p broker.Process) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *exitQueue) run() {
	defer close(q.done)
	defer close(q.out)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.items = nil // let a burst's backing array go
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		p := q.items[0]
		q.items[0] = broker.Process{}
		q.items = q.items[1:]
		q.mu.Unlock()
		select {
		case q.out <- p:
		case <-q.stop:
			return
		}
	}
}

// close stops delivery, waits for it to end and closes the out channel.
// Call it once.
func (q *exitQueue) close() {
	close(q.stop)
	<-q.done
}
