package broker

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// TransferRequest asks to hand a live lease to a new owner.
type TransferRequest struct {
	Caller  Caller
	LeaseID string
	// OwnerPID is the new owner; required.
	OwnerPID int
	// LauncherPID is the new owner's launcher; 0 for none.
	LauncherPID int
}

// Transfer gives a live lease a new owner (and launcher) in one step,
// keeping its id, name, port and TTL, so no other request can take the
// name or port in between. It is authorized like a release (the owner's
// user or an administrator), and the new owner is held to the rules of an
// acquire's owner: it must run and belong to the caller's user.
func (b *Broker) Transfer(ctx context.Context, req TransferRequest) (Lease, error) {
	if err := checkLeaseID(req.LeaseID); err != nil {
		return Lease{}, err
	}
	if req.OwnerPID == 0 {
		return Lease{}, fieldErr("owner_pid", "required: the new owner's PID")
	}
	if err := checkPID("owner_pid", req.OwnerPID); err != nil {
		return Lease{}, err
	}
	if err := checkPID("launcher_pid", req.LauncherPID); err != nil {
		return Lease{}, err
	}
	if req.LauncherPID == req.OwnerPID {
		return Lease{}, fieldErr("launcher_pid", "must differ from the owner's PID %d", req.OwnerPID)
	}
	owner, err := b.lookup("owner_pid", req.OwnerPID)
	if err != nil {
		return Lease{}, err
	}
	if c := req.Caller; c.User != "" && !c.Admin && owner.User != c.User {
		return Lease{}, fmt.Errorf("owner_pid: pid %d belongs to user %s, not %s: %w", req.OwnerPID, owner.User, c.User, ErrPermission)
	}
	var launcher Process
	if req.LauncherPID != 0 {
		if launcher, err = b.lookup("launcher_pid", req.LauncherPID); err != nil {
			return Lease{}, err
		}
	}

	b.mu.Lock()
	e, err := b.liveLocked(req.LeaseID)
	if err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if err := b.mayChange(req.Caller, e.Lease); err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if b.reaping[e.ID] {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("lease %s: its owner is being stopped: %w", e.ID, ErrConflict)
	}
	if e.Owner.Same(owner) && e.Launcher.Same(launcher) {
		l := e.Lease
		b.mu.Unlock()
		return l, nil
	}
	if owner.User != e.Owner.User && b.perUser[owner.User] >= b.cfg.Limits.LeasesPerUser {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("user %s holds %d leases, the limit (limits.leases_per_user): %w", owner.User, b.perUser[owner.User], ErrUserLimit)
	}
	l := e.Lease
	l.Owner, l.Launcher = owner, launcher
	e.state = stateBusy
	b.mu.Unlock()

	err = b.store.Put(ctx, l)
	b.mu.Lock()
	e.state = stateLive
	if err != nil {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("store lease %s: %w", l.ID, err)
	}
	unwatch := b.unindexProcs(e)
	if b.perUser[e.Owner.User]--; b.perUser[e.Owner.User] <= 0 {
		delete(b.perUser, e.Owner.User)
	}
	prev := e.Owner
	e.Lease = l
	b.perUser[l.Owner.User]++
	add := b.indexProcs(e)
	// A process both dropped and taken up (the old launcher now the owner,
	// say) stays watched.
	unwatch = slices.DeleteFunc(unwatch, func(p Process) bool { _, ok := b.watched[keyOf(p)]; return ok })
	b.publish(Event{Type: EventTransferred, Lease: l, Time: time.Now()})
	b.mu.Unlock()
	b.watch(add)
	b.unwatch(unwatch)
	b.log.Info("lease transferred", leaseAttrs(l, "previous_owner_pid", prev.PID)...)
	return l, nil
}

// unindexProcs drops e from the owner and launcher index, as remove does,
// and returns the processes no lease needs watched any more. The caller
// holds b.mu.
func (b *Broker) unindexProcs(e *entry) []Process {
	var unwatch []Process
	for _, p := range []Process{e.Owner, e.Launcher} {
		if p.IsZero() {
			continue
		}
		k := keyOf(p)
		if set := b.byProc[k]; set != nil {
			delete(set, e.ID)
			if len(set) == 0 {
				delete(b.byProc, k)
				if wp, ok := b.watched[k]; ok {
					delete(b.watched, k)
					unwatch = append(unwatch, wp)
				}
			}
		}
	}
	return unwatch
}
