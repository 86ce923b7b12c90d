package broker

import (
	"context"
	"errors"
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

// end removes a live lease durably and announces it.
func (b *Broker) end(ctx context.Context, id string, typ EventType, reason Reason, check func(*entry) error) (Lease, error) {
	b.mu.Lock()
	e, err := b.liveLocked(id)
	if err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if check != nil {
		if err := check(e); err != nil {
			b.mu.Unlock()
			return Lease{}, err
		}
	}
	e.state = stateBusy
	b.mu.Unlock()

	if err := b.store.Delete(ctx, id); err != nil {
		b.mu.Lock()
		e.state = stateLive
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("delete lease %s: %w", id, err)
	}
	b.mu.Lock()
	unwatch := b.remove(e)
	b.prevOwners[e.Key()] = e.Owner
	b.publish(Event{Type: typ, Lease: e.Lease, Reason: reason, Time: time.Now()})
	b.mu.Unlock()
	b.unwatch(unwatch)
	b.log.Info("lease "+typ.String(), leaseAttrs(e.Lease, "reason", reason.String())...)
	return e.Lease, nil
}

// liveLocked returns the live lease with this id; the caller holds b.mu.
func (b *Broker) liveLocked(id string) (*entry, error) {
	e := b.byID[id]
	switch {
	case b.closed:
		return nil, ErrClosed
	case e == nil || e.state == statePending:
		return nil, fmt.Errorf("lease %s: %w", id, ErrNotFound)
	case e.state != stateLive:
		return nil, fmt.Errorf("lease %s: %w; retry", id, ErrConflict)
	}
	return e, nil
}

// Renew restarts a TTL lease's clock, with a new TTL when ttl > 0.
func (b *Broker) Renew(ctx context.Context, caller Caller, id string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseID(id); err != nil {
		return Lease{}, err
	}
	if err := checkTTL("ttl", ttl); err != nil {
		return Lease{}, err
	}
	b.mu.Lock()
	e, err := b.liveLocked(id)
	if err != nil {
		b.mu.Unlock()
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
	e.state = stateBusy
	b.mu.Unlock()

	err = b.store.Put(ctx, l)
	b.mu.Lock()
	e.state = stateLive
	if err != nil {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("store lease %s: %w", id, err)
	}
	e.Lease = l
	b.expiries.push(l.ExpiresAt, l.ID)
	b.wake()
	b.publish(Event{Type: EventRenewed, Lease: l, Time: time.Now()})
	b.mu.Unlock()
	// Keepalives renew every few seconds; info would drown the other changes.
	b.log.Debug("lease renewed", leaseAttrs(l, "expires_at", l.ExpiresAt.Format(time.RFC3339))...)
	return l, nil
}

// expireLoop ends TTL leases when their time is up.
func (b *Broker) expireLoop() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := time.Now()
		var due []string
		for {
			at, id, ok := b.expiries.peek()
			if !ok || at.After(now) {
				break
			}
			b.expiries.pop()
			if e := b.byID[id]; e != nil && e.state == stateLive && e.TTL > 0 && e.ExpiresAt.Equal(at) {
				due = append(due, id)
			}
		}
		next, _, hasNext := b.expiries.peek()
		b.mu.Unlock()

		for _, id := range due {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			_, err := b.end(ctx, id, EventExpired, ReasonTTLExpired, func(e *entry) error {
				if e.TTL == 0 || time.Now().Before(e.ExpiresAt) {
					return errRenewed
				}
				return nil
			})
			cancel()
			if err != nil && !errors.Is(err, errRenewed) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
				b.log.Error("expire lease", "lease", id, "err", err)
				// Try again shortly rather than keep an expired lease forever.
				b.mu.Lock()
				b.expiries.push(time.Now().Add(time.Second), id)
				b.mu.Unlock()
			}
		}
		wait := time.Hour
		if hasNext {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-b.done:
			return
		case <-b.poke:
		case <-timer.C:
		}
	}
}

var errRenewed = errors.New("renewed meanwhile")

// wake tells expireLoop the earliest expiry may have changed.
func (b *Broker) wake() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}
