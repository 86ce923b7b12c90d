package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// Churn is the figure of the kill scenario: clients churn leases for a
// few shared owner processes, then every owner is killed at once, and
// every lease they held must come back as a RECLAIMED event.
type Churn struct {
	Clients  int     `json:"clients"`
	Owners   int     `json:"owners"`
	Seconds  float64 `json:"seconds"`
	Acquires int64   `json:"acquires"`
	Releases int64   `json:"releases"`
	// Held is how many leases the owners held when they were killed;
	// Reclaimed how many RECLAIMED events came for them; Left how many
	// of brokerbench's leases the daemon still listed afterwards.
	Held      int `json:"held"`
	Reclaimed int `json:"reclaimed"`
	Left      int `json:"left"`
	// Latency runs from the SIGKILL of a lease's owner to its event.
	Latency Latency `json:"kill_to_event"`
}

// churnNames is how many names each client cycles through per owner.
const churnNames = 4

// churn runs the kill scenario against the daemon cfg names.
func churn(ctx context.Context, cfg config, log func(string, ...any)) (*Churn, error) {
	res := &Churn{Clients: cfg.churnClients, Owners: cfg.churnOwners}
	err := withDaemon(ctx, cfg, log, func(addr string) (err error) {
		owners := make([]*owner, 0, cfg.churnOwners)
		defer func() {
			for _, o := range owners {
				if kerr := o.kill(); kerr != nil && err == nil {
					err = kerr
				}
			}
		}()
		for range cfg.churnOwners {
			o, err := startOwner()
			if err != nil {
				return err
			}
			owners = append(owners, o)
		}
		cs, err := dial(ctx, addr, cfg.churnClients)
		if err != nil {
			return err
		}
		defer closeAll(cs)

		log("%d clients churning leases for %d owners for %v", cfg.churnClients, cfg.churnOwners, cfg.churnFor)
		var acquires, releases atomic.Int64
		deadline := time.Now().Add(cfg.churnFor)
		elapsed, err := parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
			rng := rand.New(rand.NewPCG(uint64(i), 14)) // fixed seeds: the same churn each run
			for time.Now().Before(deadline) {
				o := owners[rng.IntN(len(owners))]
				name := fmt.Sprintf("churn-c%d-o%d-n%d", i, o.pid(), rng.IntN(churnNames))
				res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: int32(o.pid())})
				if err != nil {
					return fmt.Errorf("acquire %s: %w", name, err)
				}
				acquires.Add(1)
				// Release half of them, so leases come and go and some stay.
				if rng.IntN(2) == 0 {
					if _, err := call(ctx, c.broker.ReleaseLease, &brokerpb.ReleaseLeaseRequest{LeaseId: res.GetLease().GetId()}); err != nil {
						return fmt.Errorf("release %s: %w", res.GetLease().GetId(), err)
					}
					releases.Add(1)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		res.Seconds, res.Acquires, res.Releases = round3(elapsed.Seconds()), acquires.Load(), releases.Load()

		list, err := call(ctx, cs[0].broker.ListLeases, &brokerpb.ListLeasesRequest{Namespace: namespace})
		if err != nil {
			return fmt.Errorf("list leases: %w", err)
		}
		ownerOf := map[string]int{} // lease id -> owner pid
		for _, l := range list.GetLeases() {
			ownerOf[l.GetId()] = int(l.GetOwnerPid())
		}
		res.Held = len(ownerOf)
		if res.Held == 0 {
			return errors.New("no leases held after the churn")
		}
		w, err := watch(ctx, cs[0], 2*res.Held+64)
		if err != nil {
			return err
		}
		defer w.stop()
		// A grant seen on the stream proves it live before the kills; the
		// stream may be registered only after WatchLeases returns, so probe
		// until one is seen.
		if err := probeWatch(ctx, cs[0], w, owners[0].pid(), ownerOf); err != nil {
			return err
		}
		res.Held = len(ownerOf)

		log("killing all %d owners, holding %d leases", len(owners), res.Held)
		killedAt := map[int]time.Time{}
		for _, o := range owners {
			killedAt[o.pid()] = time.Now()
			if err := o.kill(); err != nil {
				return err
			}
		}
		lat := make([]time.Duration, 0, res.Held)
		timer := time.NewTimer(eventTimeout)
		defer timer.Stop()
	collect:
		for len(lat) < res.Held {
			select {
			case ev, ok := <-w.events:
				if !ok {
					return fmt.Errorf("watch ended after %d of %d reclaims: %w", len(lat), res.Held, w.err)
				}
				pid, held := ownerOf[ev.id]
				if ev.typ != brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED || !held {
					continue
				}
				delete(ownerOf, ev.id)
				lat = append(lat, ev.at.Sub(killedAt[pid]))
			case <-timer.C:
				break collect
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		res.Reclaimed = len(lat)
		res.Latency = summarize(lat)
		after, err := call(ctx, cs[0].broker.ListLeases, &brokerpb.ListLeasesRequest{Namespace: namespace})
		if err != nil {
			return fmt.Errorf("list leases after the kills: %w", err)
		}
		res.Left = len(after.GetLeases())
		if res.Reclaimed != res.Held || res.Left != 0 {
			missing := slices.Collect(func(yield func(string) bool) {
				for id := range ownerOf {
					if !yield(id) {
						return
					}
				}
			})
			return fmt.Errorf("%d of %d leases reclaimed within %v of the kills, %d still listed; no event for %v",
				res.Reclaimed, res.Held, eventTimeout, res.Left, missing[:min(len(missing), 5)])
		}
		return nil
	})
	return res, err
}

// probeWatch acquires probe leases (names "churn-probe-N") for owner until
// the stream shows one, adding each to held, so the caller can account for
// or release them.
func probeWatch(ctx context.Context, c *client, w *watcher, owner int, held map[string]int) error {
	probes := map[string]bool{}
	for k := range 50 {
		name := fmt.Sprintf("churn-probe-%d", k)
		res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: int32(owner)})
		if err != nil {
			return fmt.Errorf("acquire %s: %w", name, err)
		}
		probes[res.GetLease().GetId()] = true
		held[res.GetLease().GetId()] = owner
		timer := time.NewTimer(200 * time.Millisecond)
	wait:
		for {
			select {
			case ev, ok := <-w.events:
				if !ok {
					timer.Stop()
					return fmt.Errorf("watch ended: %w", w.err)
				}
				if ev.typ == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED && probes[ev.id] {
					timer.Stop()
					return nil
				}
			case <-timer.C:
				break wait
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			}
		}
	}
	return errors.New("the watch stream showed none of 50 probe grants")
}
