package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

var (
	// ErrReleased is a lease's Err after this process released it.
	ErrReleased = errors.New("lease released")
	// ErrLeaseLost is a lease's Err (together with the daemon's reason,
	// such as ErrNotFound) when the daemon no longer has the lease: it
	// expired, its port was reclaimed by force, or its owner died.
	ErrLeaseLost = errors.New("lease lost")
	// ErrClientClosed is a lease's Err when its Client was closed while
	// keeping it alive; the daemon keeps the lease until its TTL runs out.
	ErrClientClosed = errors.New("client closed")
)

// errStopped is the cancel cause of a keepalive stopped by its own side
// (Release or Close), as opposed to its Acquire context ending.
var errStopped = errors.New("keepalive stopped")

// Renewal pacing. A lease is renewed at a third of its TTL, so two renewals
// may fail in a row before it expires; a failure the daemon may get over
// (unavailable, busy) is retried sooner.
const (
	renewFraction = 3
	maxRetryDelay = time.Second
	minRetryDelay = 50 * time.Millisecond
)

// lifetime is what a Lease knows of its own end.
type lifetime struct {
	done chan struct{}
	once sync.Once
	err  error // set before done closes

	// stop and stopped are set for a lease kept alive by this process.
	stop    context.CancelCauseFunc
	stopped chan struct{}
}

func newLifetime() *lifetime { return &lifetime{done: make(chan struct{})} }

func (lt *lifetime) end(err error) {
	lt.once.Do(func() {
		lt.err = err
		close(lt.done)
	})
}

// Done returns a channel that is closed when this process stops holding the
// lease: it was released, the daemon no longer has it, or — for a TTL lease
// — its keepalive ended with the Acquire context or the Client. For a lease
// without a TTL, only Release closes it: such a lease lives as long as its
// owner process and is not watched by the client.
func (l *Lease) Done() <-chan struct{} { return l.life.done }

// Err returns nil while Done is open. After, it says why the lease ended
// here: ErrReleased; an error matching ErrLeaseLost and the daemon's reason
// (ErrNotFound, ErrPermissionDenied); the Acquire context's error; or
// ErrClientClosed.
func (l *Lease) Err() error {
	select {
	case <-l.life.done:
		return l.life.err
	default:
		return nil
	}
}

// stopKeepalive stops renewing and waits until the renewer has returned.
func (l *Lease) stopKeepalive() {
	if l.life.stop == nil {
		return
	}
	l.life.stop(errStopped)
	<-l.life.stopped
}

// keepAlive starts renewing l until ctx ends or stopKeepalive is called.
// The client tracks the renewer so that Close stops and waits for it.
func (c *Client) keepAlive(ctx context.Context, l *Lease) {
	ctx, cancel := context.WithCancelCause(ctx)
	l.life.stop = cancel
	l.life.stopped = make(chan struct{})

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel(errStopped)
		close(l.life.stopped)
		l.life.end(ErrClientClosed)
		return
	}
	c.renewing[l] = struct{}{}
	c.mu.Unlock()

	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.renewing, l)
			c.mu.Unlock()
			close(l.life.stopped)
		}()
		if err := c.renew(ctx, l); err != nil {
			l.life.end(err)
		}
	}()
}

// renew renews l until it fails for good or ctx ends. It returns nil when
// stopped by this side, whose stopper then ends the lifetime.
func (c *Client) renew(ctx context.Context, l *Lease) error {
	interval := l.TTL / renewFraction
	retry := min(max(interval/4, minRetryDelay), maxRetryDelay)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctxEnd(ctx)
		case <-t.C:
		}
		_, err := c.Renew(ctx, l.ID, 0)
		switch {
		case err == nil:
			t.Reset(interval)
		case ctx.Err() != nil:
			return ctxEnd(ctx)
		case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConflict) || errors.Is(err, context.DeadlineExceeded):
			// The daemon restarts or is busy; it restores leases, so try
			// again until it answers for this one.
			t.Reset(retry)
		default:
			return &lostError{id: l.ID, err: err}
		}
	}
}

// ctxEnd is nil for a keepalive stopped by its own side, else the error of
// the Acquire context.
func ctxEnd(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errStopped) {
		return nil
	}
	return ctx.Err()
}

// lostError is a lease the daemon no longer has.
type lostError struct {
	id  string
	err error
}

func (e *lostError) Error() string { return fmt.Sprintf("lease %s lost: %v", e.id, e.err) }

func (e *lostError) Unwrap() []error { return []error{ErrLeaseLost, e.err} }
