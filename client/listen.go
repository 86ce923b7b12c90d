package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// releaseTimeout bounds the release a Listener's Close makes.
const releaseTimeout = 5 * time.Second

// Listener is a TCP listener on a leased port. Closing it releases the
// lease.
type Listener struct {
	net.Listener
	lease *Lease

	once     sync.Once
	closeErr error
}

// Lease returns the lease the listener's port belongs to.
func (l *Listener) Lease() *Lease { return l.lease }

// Close stops listening and releases the lease. A lease the daemon no
// longer has is not an error.
func (l *Listener) Close() error {
	l.once.Do(func() {
		err := l.Listener.Close()
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if rerr := l.lease.Release(ctx); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			err = errors.Join(err, fmt.Errorf("release lease %s: %w", l.lease.ID, rerr))
		}
		l.closeErr = err
	})
	return l.closeErr
}

// Listen leases a port for name, owned by this process, and listens on it
// (TCP, every address). Between the daemon's check and the bind another
// process may take the port; then Listen releases that lease and tries
// once more with a fresh one. The returned listener is a *Listener, whose
// Close releases the lease. opts are Acquire's; a UDP-only lease is refused.
// A name this process already holds (say, by another Listener) is refused
// with ErrNameTaken, and that lease is left as it is.
func (c *Client) Listen(ctx context.Context, name string, opts ...AcquireOption) (net.Listener, error) {
	var lastErr error
	for range 2 {
		lease, err := c.Acquire(ctx, name, opts...)
		if err != nil {
			return nil, err
		}
		if lease.Existing {
			// This process already holds the name, most likely through
			// another listener still serving on it: leave that lease be.
			return nil, fmt.Errorf("listen as %s/%s: this process already holds the name's lease %s on port %d (close that listener first): %w",
				lease.Namespace, lease.Name, lease.ID, lease.Port, ErrNameTaken)
		}
		if lease.Protocol == UDP {
			lease.Release(ctx)
			return nil, &InvalidArgumentError{Field: "protocol", Rule: "Listen binds TCP; lease UDP ports with Acquire"}
		}
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(lease.Port))
		if err == nil {
			return &Listener{Listener: ln, lease: lease}, nil
		}
		lastErr = fmt.Errorf("listen on leased port %d: %w", lease.Port, err)
		if rerr := lease.Release(ctx); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			return nil, errors.Join(lastErr, fmt.Errorf("release lease %s: %w", lease.ID, rerr))
		}
		if !lostBindRace(err) {
			return nil, lastErr
		}
	}
	return nil, lastErr
}
