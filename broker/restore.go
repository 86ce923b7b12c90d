package broker

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// restore loads the store and keeps the leases whose owners still live.
func (b *Broker) restore(ctx context.Context) error {
	st, err := b.store.Load(ctx)
	if err != nil {
		return err
	}
	maps.Copy(b.lastPorts, st.LastPorts)
	now := time.Now()
	var gone []Lease
	var reasons []Reason
	// Many leases share an owner; look each PID up once.
	live := map[int]Process{}
	alive := func(p Process) bool {
		lp, ok := live[p.PID]
		if !ok {
			var err error
			if lp, err = b.procs.Lookup(p.PID); err != nil {
				lp = Process{}
			}
			live[p.PID] = lp
		}
		return lp.PID != 0 && lp.Same(p)
	}
	for _, l := range st.Leases {
		reason := ReasonNone
		switch {
		case l.TTL > 0 && !now.Before(l.ExpiresAt):
			reason = ReasonTTLExpired
		case !alive(l.Owner):
			reason = ReasonOwnerExited
		}
		if reason == ReasonNone {
			if other := b.byPort[l.Port]; other != nil {
				// Two stored leases on one port cannot both be right; keep the older.
				b.log.Warn("stored lease shares its port with another; dropping the newer",
					"lease", l.ID, "other", other.ID, "port", l.Port)
				reason = ReasonForced
			} else if b.byName[l.Key()] != nil {
				b.log.Warn("stored lease shares its name with another; dropping it", "lease", l.ID, "name", l.Key())
				reason = ReasonForced
			}
		}
		if reason != ReasonNone {
			gone = append(gone, l)
			reasons = append(reasons, reason)
			continue
		}
		b.insert(&entry{Lease: l, state: stateLive})
	}
	if len(gone) > 0 {
		ids := make([]string, len(gone))
		for i, l := range gone {
			ids[i] = l.ID
		}
		if err := b.store.Delete(ctx, ids...); err != nil {
			return fmt.Errorf("reclaim leases of owners that died while the broker was down: %w", err)
		}
		for i, l := range gone {
			b.log.Info("lease reclaimed at start", leaseAttrs(l, "reason", reasons[i].String())...)
		}
	}
	var procs []Process
	for _, e := range b.byID {
		if e.TTL > 0 {
			b.expiries.push(e.ExpiresAt, e.ID)
		}
		procs = append(procs, b.indexProcs(e)...)
	}
	b.watch(procs)
	return nil
}

// orphansAtStart handles leases whose launcher died while the broker was
// down and whose owner lives on.
func (b *Broker) orphansAtStart() {
	b.mu.Lock()
	var orphans []Lease
	for _, e := range b.byID {
		if !e.Launcher.IsZero() && !b.alive(e.Launcher) {
			orphans = append(orphans, e.Lease)
		}
	}
	b.mu.Unlock()
	for _, l := range orphans {
		b.orphaned(l)
	}
}
