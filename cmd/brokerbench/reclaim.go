package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// eventTimeout bounds the wait for one lease event.
const eventTimeout = 10 * time.Second

// event is a lease event and when brokerbench received it.
type event struct {
	typ brokerpb.LeaseEventType
	id  string
	at  time.Time
}

// watcher receives lease events of brokerbench's namespace.
type watcher struct {
	events chan event
	err    error // why the stream ended; read after events is closed
	cancel context.CancelFunc
}

// watch opens the stream. buf should hold every event the caller may leave
// unread for a while: a stream that stops reading is dropped by the daemon.
func watch(ctx context.Context, c *client, buf int) (*watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.broker.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{Namespace: namespace})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch leases: %w", err)
	}
	w := &watcher{events: make(chan event, buf), cancel: cancel}
	go func() {
		defer close(w.events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				w.err = err
				return
			}
			select {
			case w.events <- event{typ: ev.GetType(), id: ev.GetLease().GetId(), at: time.Now()}:
			case <-ctx.Done():
				w.err = ctx.Err()
				return
			}
		}
	}()
	return w, nil
}

// stop ends the stream and waits for its reader.
func (w *watcher) stop() {
	w.cancel()
	for range w.events {
	}
}

// next returns the first event of type typ for lease id, skipping others.
func (w *watcher) next(ctx context.Context, typ brokerpb.LeaseEventType, id string) (event, error) {
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				return event{}, fmt.Errorf("watch ended before %v of lease %s: %w", typ, id, w.err)
			}
			if ev.typ == typ && ev.id == id {
				return ev, nil
			}
		case <-timer.C:
			return event{}, fmt.Errorf("no %v event for lease %s within %v", typ, id, eventTimeout)
		case <-ctx.Done():
			return event{}, ctx.Err()
		}
	}
}

// reclaim starts n owner processes, leases a port to each, then kills
// them with SIGKILL one at a time and times each kill to the RECLAIMED
// event of its lease. Every owner is killed and reaped before it returns.
func reclaim(ctx context.Context, c *client, n int, log func(string, ...any)) (_ Latency, err error) {
	w, err := watch(ctx, c, 2*n+64)
	if err != nil {
		return Latency{}, err
	}
	defer w.stop()

	owners := make([]*owner, 0, n)
	defer func() {
		for _, o := range owners {
			if kerr := o.kill(); kerr != nil && err == nil {
				err = kerr
			}
		}
	}()
	ids := make([]string, n)
	for i := range n {
		o, err := startOwner()
		if err != nil {
			return Latency{}, err
		}
		owners = append(owners, o)
		name := fmt.Sprintf("owner-%d", i)
		res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: int32(o.pid())})
		if err != nil {
			return Latency{}, fmt.Errorf("acquire %s for owner pid %d: %w", name, o.pid(), err)
		}
		ids[i] = res.GetLease().GetId()
	}
	// A grant seen on the stream proves the watch live before the first
	// kill; the stream may be registered only after WatchLeases returns,
	// so grants made before it are not awaited.
	probes := map[string]int{}
	if err := probeWatch(ctx, c, w, os.Getpid(), probes); err != nil {
		return Latency{}, err
	}
	for id := range probes {
		if _, err := call(ctx, c.broker.ReleaseLease, &brokerpb.ReleaseLeaseRequest{LeaseId: id}); err != nil {
			return Latency{}, fmt.Errorf("release probe lease %s: %w", id, err)
		}
	}
	log("killing %d owners one at a time", n)
	lat := make([]time.Duration, 0, n)
	for i, o := range owners {
		t0 := time.Now()
		if err := o.kill(); err != nil {
			return Latency{}, err
		}
		ev, err := w.next(ctx, brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED, ids[i])
		if err != nil {
			return Latency{}, fmt.Errorf("owner pid %d killed: %w", o.pid(), err)
		}
		lat = append(lat, ev.at.Sub(t0))
	}
	if len(lat) == 0 {
		return Latency{}, errors.New("no owners to kill")
	}
	return summarize(lat), nil
}
