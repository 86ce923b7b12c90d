package broker

import (
	"context"
	"errors"
	"fmt"
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

// processExited reclaims the leases p owned, and applies the orphan
// policy to the leases p launched for owners that still run.
func (b *Broker) processExited(p Process) {
	b.mu.Lock()
	k := keyOf(p)
	var owned []string
	var launched []Lease
	for id, e := range b.byProc[k] {
		switch {
		case b.reaping[id]:
		case keyOf(e.Owner) == k:
			owned = append(owned, id)
		case keyOf(e.Launcher) == k && e.state == stateLive:
			launched = append(launched, e.Lease)
		}
	}
	// The watcher reports each process once; forget it so that a later
	// lease of a reused PID is watched afresh.
	delete(b.watched, k)
	b.mu.Unlock()
	for _, id := range owned {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		_, err := b.end(ctx, id, EventReclaimed, ReasonOwnerExited, nil)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
			b.log.Error("reclaim lease of exited owner", "lease", id, "pid", p.PID, "err", err)
		}
	}
	for _, l := range launched {
		b.orphaned(l)
	}
}

// orphaned applies the orphan policy to a lease whose launcher exited
// while its owner lives on. The stop runs on a goroutine the broker owns,
// so one orphan's grace period does not delay other exits.
func (b *Broker) orphaned(l Lease) {
	if b.cfg.Orphans == OrphanKeep {
		b.log.Info("launcher exited; keeping its service (reclaim.orphans: keep)", leaseAttrs(l)...)
		return
	}
	why := fmt.Sprintf("orphan rule: launcher pid %d of %s exited", l.Launcher.PID, l.Key())
	if _, _, err := b.reapOrphan(b.daemonCaller(), l, why); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrClosed) {
		b.log.Error("orphaned service left running", leaseAttrs(l, "err", err.Error())...)
	}
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
