package broker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// restore loads the store and keeps the leases whose owners still live.
func (b *Broker) restore(ctx context.Context) error {
	st, err := b.store.Load(ctx)
	if err != nil {
		return err
	}
	for k, port := range st.LastPorts {
		b.rememberLocked(k, port, Process{})
	}
	// On two leases for one port or one name, the older one stands: it was
	// granted first, so the newer one should never have been.
	slices.SortFunc(st.Leases, func(x, y Lease) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.ID, y.ID))
	})
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
			// A service that daemonized while the daemon was down keeps
			// its lease, as it would have with the daemon up.
			if succ, ok := b.successor(l); ok {
				moved := l
				moved.Owner = succ
				if err := b.store.Put(ctx, moved); err != nil {
					b.log.Warn("cannot move a restored lease to the process holding its port", leaseAttrs(l, "err", err.Error())...)
				} else {
					b.log.Info("owner exited while the daemon was down; the lease follows the process holding its port", leaseAttrs(moved, "old_owner_pid", l.Owner.PID)...)
					l, reason = moved, ReasonNone
				}
			}
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
		b.insert(newEntry(l, stateLive))
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
	for _, e := range b.byID {
		if err := b.watchProcsLocked(e); err != nil {
			// Refusing is not an option for a lease already granted: look
			// its owner up on a timer instead.
			b.log.Warn("cannot watch a restored lease's processes; polling its owner", leaseAttrs(e.Lease, "err", err.Error())...)
			e.polled = true
		}
		b.rearmLocked(e, false)
	}
	return nil
}

// orphansAtStart handles leases whose launcher died while the broker was
// down and whose owner lives on.
func (b *Broker) orphansAtStart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.byID {
		if !e.Launcher.IsZero() && !e.orphanDone && !b.alive(e.Launcher) {
			e.launcherGone, e.orphanDone = true, true
			b.orphanedLocked(e.Lease)
		}
	}
}
