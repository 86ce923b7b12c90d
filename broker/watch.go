package broker

import (
	"errors"
	"fmt"
)

// ErrOverflow ends a subscription whose reader fell too far behind.
var ErrOverflow = errors.New("watcher fell behind and was dropped")

// subBuffer is how many events a subscriber may lag before it is dropped;
// while existing leases are fed, as many live events may wait behind them.
// Dropping keeps one slow reader from slowing every lease change.
const subBuffer = 1024

// existingPage is how many existing leases a watcher's feeder takes from
// the table at a time; the most it holds besides its buffer.
const existingPage = 128

// Subscription delivers lease events to one watcher. It holds a slot of
// limits.watchers from Watch until Close, even after it ended, so a
// transport must Close it only once its handler is done.
type Subscription struct {
	b         *Broker
	namespace string
	ch        chan Event
	// The fields below are guarded by b.mu.
	ended bool
	err   error
	// feeding: the leases that existed at Watch (event seq since) are
	// still being fed, and the feeder goroutine alone sends on ch (and
	// closes it if the subscription ends). cursor is the key of the last
	// lease it took from the table. Live events wait in pending, to follow
	// the page being sent; see publish for the few it leaves out.
	feeding bool
	since   uint64
	cursor  leaseKey
	pending []Event
	// stop wakes the feeder when the subscription ends.
	stop chan struct{}
	// fed is closed when the feeder has returned.
	fed chan struct{}
}

// Events delivers the events. It is closed when the subscription ends
// and its buffered events are read; Err then says why.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err is nil while the subscription runs and after Close; ErrOverflow when
// the reader fell behind; ErrClosed when the broker closed.
func (s *Subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription and frees its watcher slot. It waits for
// the feeder of existing leases, if any, to return.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.end(nil)
	s.b.mu.Unlock()
	<-s.fed
}

// end stops delivery once; the caller holds b.mu. The subscription keeps
// its slot until Close.
func (s *Subscription) end(err error) {
	if s.ended {
		return
	}
	s.ended = true
	s.err = err
	close(s.stop)
	if !s.feeding {
		close(s.ch)
	}
}

// Watch subscribes to lease events in namespace (all when empty). With
// includeExisting, an acquired event for each lease live at the call
// comes too, in namespace, name and id order, fed from the table a page at
// a time so that no watcher holds a copy of it; live events that happen
// meanwhile follow the page being sent. Applied in order, the events give
// a view that matches the table, with no gap and no duplicate.
func (b *Broker) Watch(namespace string, includeExisting bool) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if len(b.subs) >= b.cfg.Limits.Watchers {
		return nil, fmt.Errorf("%d watchers already, the limit (limits.watchers): %w", len(b.subs), ErrWatcherLimit)
	}
	s := &Subscription{b: b, namespace: namespace, ch: make(chan Event, subBuffer),
		stop: make(chan struct{}), fed: make(chan struct{})}
	b.subs[s] = struct{}{}
	if !includeExisting {
		close(s.fed)
		return s, nil
	}
	s.feeding, s.since = true, b.ordered.seq
	if b.ordered.feeders == 0 {
		b.ordered.born = make(map[string]uint64)
	}
	b.ordered.feeders++
	b.wg.Add(1) // under b.mu while open, so Close's Wait sees it
	go s.feed()
	return s, nil
}

// feed sends the existing leases a page at a time, each page followed by
// the live events about leases it has passed, then hands ch over to
// publish and returns.
func (s *Subscription) feed() {
	b := s.b
	defer b.wg.Done()
	defer close(s.fed)
	first := true
	for {
		b.mu.Lock()
		if s.ended {
			s.doneFeeding()
			close(s.ch)
			b.mu.Unlock()
			return
		}
		events := s.pending
		s.pending = nil
		page, more := b.pageBornBy(s.namespace, s.cursor, first, existingPage, s.since)
		first = false
		if len(page) > 0 {
			s.cursor = keyOfLease(&page[len(page)-1])
		}
		if !more && len(page) == 0 {
			// Nothing left to page: the live events carry on alone, in order.
			for _, ev := range events {
				select {
				case s.ch <- ev:
				default:
					s.end(ErrOverflow)
				}
			}
			s.doneFeeding()
			if s.ended {
				close(s.ch)
			}
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		// The events are about leases of earlier pages (already sent) or
		// leases no page holds, so the page may go first.
		for _, l := range page {
			s.send(Event{Type: EventAcquired, Lease: l, Time: l.CreatedAt})
		}
		for _, ev := range events {
			s.send(ev)
		}
	}
}

// doneFeeding hands ch over to publish; the caller holds b.mu.
func (s *Subscription) doneFeeding() {
	s.feeding, s.pending = false, nil
	v := &s.b.ordered
	if v.feeders--; v.feeders == 0 {
		v.born = nil
	}
}

// send is the feeder's blocking send; it gives up when the subscription
// ends or the broker closes.
func (s *Subscription) send(ev Event) {
	select {
	case s.ch <- ev:
	case <-s.stop:
	case <-s.b.done:
	}
}

// publish sends ev to every matching subscriber without blocking; the
// caller holds b.mu, so subscribers see changes in the order they happened.
//
// A subscriber still feeding existing leases gets ev in its pending list,
// except for a lease that existed at its Watch and that its pages have not
// reached: a renew or transfer is left out (the page will show it), and an end comes
// as that lease's acquired event followed by the end, since no page will.
func (b *Broker) publish(ev Event) {
	v := &b.ordered
	v.seq++
	if ev.Type == EventAcquired || ev.Type.Ended() {
		v.invalidate()
	}
	born := v.born[ev.Lease.ID]
	if v.feeders > 0 {
		switch {
		case ev.Type == EventAcquired:
			v.born[ev.Lease.ID] = v.seq
			born = v.seq
		case ev.Type.Ended():
			delete(v.born, ev.Lease.ID)
		}
	}
	for s := range b.subs {
		if s.ended || (s.namespace != "" && s.namespace != ev.Lease.Namespace) {
			continue
		}
		if s.feeding {
			evs := []Event{ev}
			if born <= s.since && keyOfLease(&ev.Lease).compare(s.cursor) > 0 {
				if ev.Type == EventRenewed || ev.Type == EventTransferred {
					continue
				}
				evs = []Event{{Type: EventAcquired, Lease: ev.Lease, Time: ev.Lease.CreatedAt}, ev}
			}
			if len(s.pending)+len(evs) > subBuffer {
				s.end(ErrOverflow)
				continue
			}
			s.pending = append(s.pending, evs...)
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.end(ErrOverflow)
		}
	}
}
