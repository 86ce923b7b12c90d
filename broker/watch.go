package broker

import (
	"errors"
	"fmt"
	"sync"
)

// ErrOverflow ends a subscription whose reader fell too far behind.
var ErrOverflow = errors.New("watcher fell behind and was dropped")

// subBuffer is how many events a subscriber may lag before it is dropped.
// Dropping keeps one slow reader from slowing every lease change.
const subBuffer = 1024

// Subscription delivers lease events to one watcher.
type Subscription struct {
	b         *Broker
	namespace string
	ch        chan Event
	once      sync.Once
	err       error
}

// Events delivers the events. It is closed when the subscription ends;
// Err then says why.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err is nil while the subscription runs and after Close; ErrOverflow when
// the reader fell behind; ErrClosed when the broker closed.
func (s *Subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	delete(s.b.subs, s)
	s.end(nil)
}

// end closes the channel once; the caller holds b.mu.
func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.ch)
	})
}

// Watch subscribes to lease events in namespace (all when empty). With
// includeExisting, an acquired event for each live lease comes first.
func (b *Broker) Watch(namespace string, includeExisting bool) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if len(b.subs) >= b.cfg.Limits.Watchers {
		return nil, fmt.Errorf("%d watchers already, the limit (limits.watchers): %w", len(b.subs), ErrWatcherLimit)
	}
	size := subBuffer
	if includeExisting {
		size += len(b.byID)
	}
	s := &Subscription{b: b, namespace: namespace, ch: make(chan Event, size)}
	if includeExisting {
		for _, l := range b.listLocked(namespace) {
			s.ch <- Event{Type: EventAcquired, Lease: l, Time: l.CreatedAt}
		}
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// publish sends ev to every matching subscriber without blocking; the
// caller holds b.mu, so subscribers see changes in the order they happened.
func (b *Broker) publish(ev Event) {
	for s := range b.subs {
		if s.namespace != "" && s.namespace != ev.Lease.Namespace {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			delete(b.subs, s)
			s.end(ErrOverflow)
		}
	}
}
