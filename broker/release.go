package broker

import (
	"context"
	"fmt"
	"time"
)

// Release ends a lease at its owner's request.
func (b *Broker) Release(ctx context.Context, caller Caller, id string) (Lease, error) {
	if err := checkLeaseID(id); err != nil {
		return Lease{}, err
	}
	return b.end(ctx, id, EventReleased, ReasonNone, func(e *entry) error { return b.mayChange(caller, e.Lease) })
}

// end removes a live lease durably and announces it. It waits for a change
// already under way on the lease, then applies check (when given) to the
// lease as that change left it.
func (b *Broker) end(ctx context.Context, id string, typ EventType, reason Reason, check func(*entry) error) (Lease, error) {
	e, err := b.lockIdle(ctx, id)
	if err != nil {
		return Lease{}, err
	}
	if check != nil {
		if err := check(e); err != nil {
			b.mu.Unlock()
			return Lease{}, err
		}
	}
	e.begin()
	b.mu.Unlock()
	return b.finishEnd(ctx, e, typ, reason)
}

// finishEnd makes the end of a changing entry durable. On failure the lease
// is live again and its due work re-armed, so nothing it owed is lost.
func (b *Broker) finishEnd(ctx context.Context, e *entry, typ EventType, reason Reason) (Lease, error) {
	err := b.store.Delete(ctx, e.ID)
	b.mu.Lock()
	if err != nil {
		b.settleLocked(e, true)
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("delete lease %s: %w", e.ID, err)
	}
	b.removeLocked(e)
	b.rememberLocked(e.Key(), e.Port, e.Owner)
	b.publish(Event{Type: typ, Lease: e.Lease, Reason: reason, Time: time.Now()})
	b.mu.Unlock()
	b.log.Info("lease "+typ.String(), leaseAttrs(e.Lease, "reason", reason.String())...)
	return e.Lease, nil
}

// lockIdle waits until the lease with this id is live and idle, and returns
// it with b.mu held. Changes to one lease so run one after another.
func (b *Broker) lockIdle(ctx context.Context, id string) (*entry, error) {
	for {
		b.mu.Lock()
		e := b.byID[id]
		switch {
		case b.closed:
			b.mu.Unlock()
			return nil, ErrClosed
		case e == nil || e.state == statePending:
			b.mu.Unlock()
			return nil, fmt.Errorf("lease %s: %w", id, ErrNotFound)
		case !e.busy():
			return e, nil
		}
		idle := e.idle
		b.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return nil, fmt.Errorf("lease %s: waiting for a change under way: %w", id, ctx.Err())
		case <-b.done:
			return nil, ErrClosed
		}
	}
}

// settleLocked ends a change on e that leaves it live, then does what was
// put off while it was busy: the due queue gets the lease back (a failed
// write retries later rather than at once), and a launcher exit seen
// meanwhile starts the orphan rule. The caller holds b.mu.
func (b *Broker) settleLocked(e *entry, failed bool) {
	e.settle()
	b.rearmLocked(e, failed)
	if e.launcherGone && !e.orphanDone {
		e.orphanDone = true
		b.orphanedLocked(e.Lease)
	}
}

// Renew restarts a TTL lease's clock, with a new TTL when ttl > 0.
func (b *Broker) Renew(ctx context.Context, caller Caller, id string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseID(id); err != nil {
		return Lease{}, err
	}
	if err := checkTTL("ttl", ttl); err != nil {
		return Lease{}, err
	}
	e, err := b.lockIdle(ctx, id)
	if err != nil {
		return Lease{}, err
	}
	if err := b.mayChange(caller, e.Lease); err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if ttl == 0 && e.TTL == 0 {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("lease %s has no TTL to renew: %w", id, fieldErr("ttl", "must be given for a lease without a TTL"))
	}
	l := e.Lease
	if ttl > 0 {
		l.TTL = ttl
	}
	l.ExpiresAt = time.Now().Add(l.TTL)
	e.begin()
	b.mu.Unlock()

	err = b.store.Put(ctx, l)
	b.mu.Lock()
	if err != nil {
		b.settleLocked(e, true)
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("store lease %s: %w", id, err)
	}
	e.Lease = l
	b.publish(Event{Type: EventRenewed, Lease: l, Time: time.Now()})
	b.settleLocked(e, false)
	b.mu.Unlock()
	// Keepalives renew every few seconds; info would drown the other changes.
	b.log.Debug("lease renewed", leaseAttrs(l, "expires_at", l.ExpiresAt.Format(time.RFC3339))...)
	return l, nil
}
