package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// EventType says what happened to a lease.
type EventType int

const (
	EventAcquired EventType = iota + 1
	EventReleased
	EventExpired
	EventReclaimed
	EventRenewed
	// EventTransferred: the lease has a new owner (Lease.Transfer). Its
	// value is the API's, which gives 6 to the overflow marker.
	EventTransferred EventType = 7
)

func (t EventType) String() string {
	switch t {
	case EventAcquired:
		return "acquired"
	case EventReleased:
		return "released"
	case EventExpired:
		return "expired"
	case EventReclaimed:
		return "reclaimed"
	case EventRenewed:
		return "renewed"
	case EventTransferred:
		return "transferred"
	}
	return fmt.Sprintf("event(%d)", int(t))
}

// Reason says why a lease ended without its owner releasing it.
type Reason int

const (
	ReasonNone Reason = iota
	ReasonOwnerExited
	ReasonLauncherExited
	ReasonTTLExpired
	ReasonForced
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonOwnerExited:
		return "owner exited"
	case ReasonLauncherExited:
		return "launcher exited"
	case ReasonTTLExpired:
		return "ttl expired"
	case ReasonForced:
		return "forced"
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Event is one change to a lease.
type Event struct {
	Type   EventType
	Lease  *Lease
	Reason Reason
	Time   time.Time
}

// WatchOption configures Watch.
type WatchOption func(*brokerpb.WatchLeasesRequest)

// WithExisting starts the watch with an EventAcquired for every live lease.
func WithExisting() WatchOption {
	return func(r *brokerpb.WatchLeasesRequest) { r.IncludeExisting = true }
}

// Watch streams lease events in namespace, or in every namespace when it
// is empty. The stream opens when iteration starts and closes when the loop
// ends; the daemon ending it ends the loop without an error. A failure is
// yielded once, as the last pair: ErrWatchOverflow when the watcher fell
// behind, ErrUnavailable when the daemon went away, or ctx's error.
//
//	for ev, err := range c.Watch(ctx, "") {
//		if err != nil { ... }
//		fmt.Println(ev.Type, ev.Lease.Name, ev.Lease.Port)
//	}
func (c *Client) Watch(ctx context.Context, namespace string, opts ...WatchOption) iter.Seq2[Event, error] {
	req := &brokerpb.WatchLeasesRequest{Namespace: namespace}
	for _, opt := range opts {
		opt(req)
	}
	return func(yield func(Event, error) bool) {
		// Cancelling ends the stream when the caller breaks out early.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.rpc.WatchLeases(ctx, req)
		if err != nil {
			yield(Event{}, err)
			return
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Event{}, err)
				return
			}
			if resp.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW {
				yield(Event{}, ErrWatchOverflow)
				return
			}
			ev := Event{
				Type:   EventType(resp.GetType()),
				Lease:  leaseFromProto(c, resp.GetLease()),
				Reason: Reason(resp.GetReason()),
				Time:   timeFromProto(resp.GetTime()),
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}
