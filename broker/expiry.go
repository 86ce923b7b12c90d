package broker

import (
	"container/heap"
	"context"
	"time"
)

// dueQueue orders the leases the broker must look at by itself: a TTL
// deadline, a reclaim of an exited owner, a retry after a failed store
// write, or a poll of an owner no watcher watches. Each lease is in it at
// most once (entry.slot), so renewals move it instead of adding to it.
type dueQueue struct{ items dueItems }

type dueItems []*entry

func (h dueItems) Len() int           { return len(h) }
func (h dueItems) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueItems) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot = i
	h[j].slot = j
}
func (h *dueItems) Push(x any) {
	e := x.(*entry)
	e.slot = len(*h)
	*h = append(*h, e)
}
func (h *dueItems) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.slot = -1
	return e
}

// set queues e at at, or moves it there if it is queued already.
func (q *dueQueue) set(e *entry, at time.Time) {
	e.due = at
	if e.slot >= 0 {
		heap.Fix(&q.items, e.slot)
		return
	}
	heap.Push(&q.items, e)
}

// drop takes e out of the queue, if it is in it.
func (q *dueQueue) drop(e *entry) {
	if e.slot >= 0 {
		heap.Remove(&q.items, e.slot)
	}
}

// next returns the earliest entry without removing it.
func (q *dueQueue) next() (*entry, bool) {
	if len(q.items) == 0 {
		return nil, false
	}
	return q.items[0], true
}

func (q *dueQueue) len() int { return len(q.items) }

// retryDelay spaces out the broker's own attempts to end a lease after a
// store write failed; pollEvery is how often an owner that no exit watcher
// watches is looked up.
const (
	retryDelay = time.Second
	pollEvery  = 2 * time.Second
)

// rearmLocked places a live entry in the due queue at the next moment the
// broker must act on it by itself, or takes it out when there is none.
// After a failed write the moment is at least retryDelay away, so a store
// that keeps failing is not hammered. The caller holds b.mu.
func (b *Broker) rearmLocked(e *entry, failed bool) {
	now := time.Now()
	var at time.Time
	if e.ownerGone {
		at = now
	} else {
		if e.TTL > 0 {
			at = e.ExpiresAt
		}
		if poll := now.Add(pollEvery); e.polled && (at.IsZero() || poll.Before(at)) {
			at = poll
		}
	}
	if at.IsZero() {
		b.due.drop(e)
		return
	}
	if retry := now.Add(retryDelay); failed && at.Before(retry) {
		at = retry
	}
	b.due.set(e, at)
	b.wake()
}

// dueWork is one end the due loop makes.
type dueWork struct {
	e      *entry
	typ    EventType
	reason Reason
}

// dueLoop acts on leases when they come due: it reclaims those whose owner
// exited, expires those whose TTL ran out and polls owners no watcher
// watches. A lease that is busy when it comes due is re-armed when its
// change settles.
func (b *Broker) dueLoop() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		work := b.takeDueLocked(time.Now())
		next, hasNext := b.due.next()
		var wait time.Duration
		if hasNext {
			wait = max(time.Until(next.due), 0)
		}
		b.mu.Unlock()

		for _, w := range work {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			if w.reason == ReasonOwnerExited && b.followService(ctx, w.e) {
				cancel()
				continue
			}
			if _, err := b.finishEnd(ctx, w.e, w.typ, w.reason); err != nil {
				b.log.Error("end lease; will retry", leaseAttrs(w.e.Lease, "reason", w.reason.String(), "err", err.Error())...)
			}
			cancel()
		}
		if len(work) > 0 {
			continue // the queue changed; look again before sleeping
		}
		if !hasNext {
			wait = time.Hour
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

// takeDueLocked pops the entries due at now and begins the ends they call
// for. The caller holds b.mu.
func (b *Broker) takeDueLocked(now time.Time) []dueWork {
	var work []dueWork
	for {
		e, ok := b.due.next()
		if !ok || e.due.After(now) {
			return work
		}
		b.due.drop(e)
		if e.busy() {
			continue // settling re-arms it
		}
		if e.polled && !e.ownerGone && !b.alive(e.Owner) {
			e.ownerGone = true
		}
		switch {
		case e.ownerGone && b.reaping[e.ID]:
			// The orphan stop under way ends this lease; unreap re-arms it
			// should that stop leave it.
		case e.ownerGone:
			e.begin()
			work = append(work, dueWork{e, EventReclaimed, ReasonOwnerExited})
		case e.TTL > 0 && !now.Before(e.ExpiresAt):
			e.begin()
			work = append(work, dueWork{e, EventExpired, ReasonTTLExpired})
		default:
			b.rearmLocked(e, false)
		}
	}
}

// wake tells dueLoop the earliest due time may have changed.
func (b *Broker) wake() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}
