package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReclaimRequest asks to free a port.
type ReclaimRequest struct {
	Caller   Caller
	Port     int
	Protocol Protocol
	// Kill stops the processes holding the port; Force skips the graceful step.
	Kill  bool
	Force bool
	// Grace overrides the configured grace period when positive; it may be
	// at most MaxCallGrace. A configured grace longer than the call can wait
	// still runs in full: the call then ends with its deadline while the
	// stop goes on in the broker.
	Grace time.Duration
}

// ReclaimResult says what a reclaim did.
type ReclaimResult struct {
	Released *Lease
	Stopped  []Stopped
	Free     bool
	Detail   string
}

// ReclaimPort releases the lease on a port and, with Kill, stops the
// processes holding it, then re-checks that the port binds. Every process
// is checked against the kill-safety rules before anything is stopped.
func (b *Broker) ReclaimPort(ctx context.Context, req ReclaimRequest) (ReclaimResult, error) {
	if err := checkPort("port", req.Port, false); err != nil {
		return ReclaimResult{}, err
	}
	proto, err := checkProtocol(req.Protocol)
	if err != nil {
		return ReclaimResult{}, err
	}
	if req.Grace < 0 || req.Grace > MaxCallGrace {
		return ReclaimResult{}, fieldErr("grace", "must be between 0 and %s (what a call can wait), got %s", MaxCallGrace, req.Grace)
	}
	port := uint16(req.Port)
	var lease *Lease
	b.mu.Lock()
	if e := b.byPort[port]; e != nil && e.state == stateLive {
		l := e.Lease
		lease = &l
	}
	b.mu.Unlock()
	if lease != nil {
		if err := b.mayChange(req.Caller, *lease); err != nil {
			return ReclaimResult{}, err
		}
	}

	var plan *stopPlan
	var holders []ProcessInfo
	if req.Kill {
		if holders, err = b.portHolders(port, proto); err != nil {
			return ReclaimResult{}, err
		}
		if len(holders) > 0 {
			why := fmt.Sprintf("reclaim of port %d", port)
			if plan, err = b.planStop(req.Caller, holders, why); err != nil {
				return ReclaimResult{}, err
			}
		}
	}

	var res ReclaimResult
	if lease != nil {
		l, err := b.end(ctx, lease.ID, EventReclaimed, ReasonForced, nil)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return ReclaimResult{}, err
		}
		if err == nil {
			res.Released = &l
		}
	}
	if plan != nil {
		grace := b.cfg.Grace
		if req.Grace > 0 {
			grace = req.Grace
		}
		job, err := b.startStop(plan, grace, req.Force, nil)
		if err != nil {
			return res, err
		}
		if res.Stopped, err = b.awaitStop(ctx, job, plan); err != nil {
			return res, err
		}
	}
	res.Free, res.Detail = b.waitFree(ctx, port, proto)
	if !res.Free && !req.Kill {
		if hs, _ := b.portHolders(port, proto); len(hs) > 0 {
			res.Detail = fmt.Sprintf("%s; held by %s (pass kill to stop it)", res.Detail, describe(hs))
		}
	}
	return res, nil
}

// reclaimForAcquire stops what an earlier lease of the same name left
// behind: a live owner whose launcher died, or that name's previous owner
// still holding the preferred port. It never touches other processes.
func (b *Broker) reclaimForAcquire(ctx context.Context, caller Caller, a acquireArgs, reqPort int) error {
	b.mu.Lock()
	var orphan *Lease
	if e := b.byName[a.key]; e != nil && e.state == stateLive && !e.Owner.Same(a.owner) &&
		!e.Launcher.IsZero() && !b.alive(e.Launcher) && b.alive(e.Owner) {
		l := e.Lease
		orphan = &l
	}
	prev, hasPrev := b.prevOwners[a.key]
	port, _ := b.preferredPort(a.key, reqPort)
	b.mu.Unlock()

	why := fmt.Sprintf("acquire of %s with reclaim", a.key)
	if orphan != nil {
		if err := b.mayChange(caller, *orphan); err != nil {
			return err
		}
		job, plan, err := b.reapOrphan(caller, *orphan, why)
		if err != nil {
			return err
		}
		_, err = b.awaitStop(ctx, job, plan)
		return err
	}
	if !hasPrev || port == 0 || b.holders == nil {
		return nil
	}
	prevInfo, err := b.liveInfo(prev)
	if err != nil {
		return nil // gone: nothing left behind
	}
	holders, err := b.portHolders(port, a.proto)
	if err != nil || len(holders) == 0 {
		return err
	}
	family := map[procKey]bool{keyOf(prev): true}
	if desc, err := b.inspect.Descendants(prev); err == nil {
		for _, d := range desc {
			family[keyOf(d.Process)] = true
		}
	}
	for _, h := range holders {
		if !family[keyOf(h.Process)] {
			return nil // someone else holds it too: leave it to the fallback
		}
	}
	plan, err := b.planStop(caller, []ProcessInfo{prevInfo}, why)
	if err != nil {
		return err
	}
	job, err := b.startStop(plan, b.cfg.Grace, false, nil)
	if err != nil {
		return err
	}
	if _, err := b.awaitStop(ctx, job, plan); err != nil {
		return err
	}
	b.waitFree(ctx, port, a.proto)
	return nil
}
