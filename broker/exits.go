package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// alive reports whether p still runs: the same PID with the same start time.
func (b *Broker) alive(p Process) bool {
	live, err := b.procs.Lookup(p.PID)
	return err == nil && live.Same(p)
}

// exitLoop reclaims the leases of owners that exit.
func (b *Broker) exitLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.done:
			return
		case p, ok := <-b.watcher.Exits():
			if !ok {
				return
			}
			b.processExited(p)
		}
	}
}

// processExited records p's exit on every lease it owns or launched. A
// lease p owned is reclaimed by the due loop as soon as no change is under
// way on it; a lease p launched gets the orphan rule once it is idle. An
// exit is thus never dropped because it arrived during a change.
func (b *Broker) processExited(p Process) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := keyOf(p)
	// The watcher reports each process once; forget it so that a later
	// lease of a reused PID is watched afresh.
	delete(b.watched, k)
	for _, e := range b.byProc[k] {
		if keyOf(e.Owner) == k && !e.ownerGone {
			e.ownerGone = true
			if !e.busy() {
				b.rearmLocked(e, false)
			}
		}
		if !e.Launcher.IsZero() && keyOf(e.Launcher) == k {
			e.launcherGone = true
			if !e.busy() && !e.orphanDone {
				e.orphanDone = true
				b.orphanedLocked(e.Lease)
			}
		}
	}
}

// orphanedLocked applies the orphan policy to a lease whose launcher
// exited. The stop runs on its own goroutine, owned by the broker, so one
// orphan's grace period does not delay other exits. The caller holds b.mu.
func (b *Broker) orphanedLocked(l Lease) {
	if b.cfg.Orphans == OrphanKeep {
		b.log.Info("launcher exited; keeping its service (reclaim.orphans: keep)", leaseAttrs(l)...)
		return
	}
	if b.closed || b.reaping[l.ID] {
		return
	}
	why := fmt.Sprintf("orphan rule: launcher pid %d of %s exited", l.Launcher.PID, l.Key())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		// A stop already under way for this lease (ErrConflict) covers it.
		if _, _, err := b.reapOrphan(b.daemonCaller(), l, why); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrClosed) {
			b.log.Error("orphaned service left running", leaseAttrs(l, "err", err.Error())...)
		}
	}()
}

// liveInfo returns the facts of p if it is still the same process.
func (b *Broker) liveInfo(p Process) (ProcessInfo, error) {
	if b.inspect == nil {
		return ProcessInfo{}, fmt.Errorf("inspect pid %d: %w", p.PID, ErrUnsupported)
	}
	info, err := b.inspect.Inspect(p.PID)
	if err != nil {
		return ProcessInfo{}, err
	}
	if !info.Process.Same(p) {
		return ProcessInfo{}, fmt.Errorf("pid %d: %w (reused by another process)", p.PID, ErrNoProcess)
	}
	return info, nil
}

// followService moves a lease whose owner exited to the process it left
// holding the port: a service that daemonized (forked, and let the
// process it was started as exit). The lease keeps its launcher, so the
// orphan rule still stops the service when the launcher dies. e is
// changing; followService settles it and returns true when it moved it,
// and leaves it changing otherwise.
func (b *Broker) followService(ctx context.Context, e *entry) bool {
	succ, ok := b.successor(e.Lease)
	if !ok {
		return false
	}
	l := e.Lease
	l.Owner = succ
	if err := b.store.Put(ctx, l); err != nil {
		b.log.Error("move lease to the process holding its port", leaseAttrs(e.Lease, "new_owner_pid", succ.PID, "err", err.Error())...)
		return false
	}
	b.mu.Lock()
	b.unindexProcLocked(e, e.Owner)
	old := e.Owner
	e.Lease = l
	e.ownerGone = false
	if err := b.watchProcsLocked(e); err != nil {
		b.log.Warn("cannot watch the new owner; polling it", leaseAttrs(l, "err", err.Error())...)
		e.polled = true
	}
	// Watchers see the new owner as they see a transfer.
	b.publish(Event{Type: EventTransferred, Lease: l, Time: time.Now()})
	b.settleLocked(e, false)
	b.mu.Unlock()
	b.log.Info("owner exited; the lease follows the process holding its port", leaseAttrs(l, "old_owner_pid", old.PID)...)
	return true
}

// successor finds the process that l's exited owner left holding the port:
// same user, started no earlier than the owner (so it may be one it
// started; a process that predates the owner cannot be), not the launcher,
// not a system process. Of several, the earliest started is the service
// rather than one of its workers.
func (b *Broker) successor(l Lease) (Process, bool) {
	if b.holders == nil {
		return Process{}, false
	}
	// The usual case, a service that simply exited, leaves the port free:
	// one bind says so, sparing the scan of every process's sockets.
	if b.prober.Probe(l.Port, l.Protocol) == nil {
		return Process{}, false
	}
	hs, err := b.portHolders(l.Port, l.Protocol)
	if err != nil {
		b.log.Warn("find the processes holding the port of an exited owner", leaseAttrs(l, "err", err.Error())...)
		return Process{}, false
	}
	var best Process
	for _, h := range hs {
		switch {
		case h.System, h.KernelThread, h.User != l.Owner.User,
			h.StartTime.Before(l.Owner.StartTime),
			h.Process.Same(l.Owner), !l.Launcher.IsZero() && h.Process.Same(l.Launcher):
			continue
		}
		if best.IsZero() || h.StartTime.Before(best.StartTime) {
			best = h.Process
		}
	}
	return best, !best.IsZero()
}
