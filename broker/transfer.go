package broker

import (
	"context"
	"fmt"
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

	e, err := b.lockIdle(ctx, req.LeaseID)
	if err != nil {
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
	if limit, rule := b.userLimit(); owner.User != e.Owner.User && b.perUser[owner.User] >= limit {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("user %s holds %d leases, %s: %w", owner.User, b.perUser[owner.User], rule, ErrUserLimit)
	}
	l := e.Lease
	l.Owner, l.Launcher = owner, launcher
	e.begin()
	b.mu.Unlock()

	err = b.store.Put(ctx, l)
	b.mu.Lock()
	if err != nil {
		b.settleLocked(e, true)
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("store lease %s: %w", l.ID, err)
	}
	prev := e.Lease
	for _, p := range []Process{prev.Owner, prev.Launcher} {
		b.unindexProcLocked(e, p)
	}
	if b.perUser[prev.Owner.User]--; b.perUser[prev.Owner.User] <= 0 {
		delete(b.perUser, prev.Owner.User)
	}
	b.perUser[l.Owner.User]++
	e.Lease = l
	// Exits seen during the change were the old owner's and launcher's.
	e.ownerGone, e.launcherGone, e.orphanDone = false, false, false
	if err := b.watchProcsLocked(e); err != nil {
		// The owner was alive a moment ago; polling still reclaims it.
		b.log.Warn("cannot watch the new owner; polling it", leaseAttrs(l, "err", err.Error())...)
		e.polled = true
	}
	b.publish(Event{Type: EventTransferred, Lease: l, Time: time.Now()})
	b.settleLocked(e, false)
	b.mu.Unlock()
	b.log.Info("lease transferred", leaseAttrs(l, "previous_owner_pid", prev.Owner.PID)...)
	return l, nil
}
