package broker

import (
	"errors"
	"fmt"
)

// Check verifies that the broker's indexes and its pool agree: every lease
// is indexed once by id, name and port, no port is held twice, the pool's
// free set is exactly the allowed ports minus the leased and the resting
// ones, every lease is indexed under its owner and launcher (each watched
// unless its exit was reported), the due queue holds each lease at most
// once and every idle lease with due work, and the name memory is within
// NameMemory. Tests run it after load; it takes the lock for a full pass.
func (b *Broker) Check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	ports := map[uint16]string{}
	users := map[string]int{}
	for id, e := range b.byID {
		if e.ID != id {
			errs = append(errs, fmt.Errorf("lease %s indexed under id %s", e.ID, id))
		}
		if b.byName[e.Key()] != e {
			errs = append(errs, fmt.Errorf("lease %s not indexed under its name %s", id, e.Key()))
		}
		if b.byPort[e.Port] != e {
			errs = append(errs, fmt.Errorf("lease %s not indexed under its port %d", id, e.Port))
		}
		if other, ok := ports[e.Port]; ok {
			errs = append(errs, fmt.Errorf("port %d held by leases %s and %s", e.Port, other, id))
		}
		ports[e.Port] = id
		users[e.Owner.User]++
	}
	if len(b.byName) != len(b.byID) || len(b.byPort) != len(b.byID) {
		errs = append(errs, fmt.Errorf("index sizes differ: %d ids, %d names, %d ports", len(b.byID), len(b.byName), len(b.byPort)))
	}
	for u, n := range users {
		if b.perUser[u] != n {
			errs = append(errs, fmt.Errorf("user %s counted with %d leases, holds %d", u, b.perUser[u], n))
		}
	}
	errs = append(errs, b.checkProcsLocked()...)
	errs = append(errs, b.checkDueLocked()...)
	if len(b.lastPorts) > NameMemory || len(b.prevOwners) > NameMemory || b.names.len() > NameMemory {
		errs = append(errs, fmt.Errorf("name memory past %d: %d last ports, %d previous owners, %d names",
			NameMemory, len(b.lastPorts), len(b.prevOwners), b.names.len()))
	}
	p := b.pool
	free := 0
	for port := 0; port <= 65535; port++ {
		pt := uint16(port)
		_, leased := b.byPort[pt]
		_, resting := p.busy[pt]
		want := p.allowed.has(pt) && !leased && !resting
		if p.avail.has(pt) != want {
			errs = append(errs, fmt.Errorf("port %d: free in the pool = %v, want %v (allowed %v, leased %v, resting %v)",
				pt, p.avail.has(pt), want, p.allowed.has(pt), leased, resting))
		}
		if want {
			free++
		}
	}
	if p.free != free {
		errs = append(errs, fmt.Errorf("pool counts %d free ports, has %d", p.free, free))
	}
	return errors.Join(errs...)
}

// checkProcsLocked verifies the process index and the watch set.
func (b *Broker) checkProcsLocked() []error {
	var errs []error
	for id, e := range b.byID {
		for _, p := range []Process{e.Owner, e.Launcher} {
			if p.IsZero() {
				continue
			}
			if b.byProc[keyOf(p)][id] != e {
				errs = append(errs, fmt.Errorf("lease %s not indexed under its process %s", id, p))
			}
			gone := (keyOf(p) == keyOf(e.Owner) && e.ownerGone) || (keyOf(p) == keyOf(e.Launcher) && e.launcherGone)
			_, watched := b.watched[keyOf(p)]
			if b.watcher != nil && !watched && !gone && !e.polled {
				errs = append(errs, fmt.Errorf("lease %s: its process %s is not watched", id, p))
			}
		}
	}
	for k, set := range b.byProc {
		if len(set) == 0 {
			errs = append(errs, fmt.Errorf("empty process index set for pid %d", k.pid))
		}
		for id, e := range set {
			if b.byID[id] != e {
				errs = append(errs, fmt.Errorf("process index of pid %d holds ended lease %s", k.pid, id))
			}
		}
	}
	for k := range b.watched {
		if b.byProc[k] == nil {
			errs = append(errs, fmt.Errorf("pid %d watched for no lease", k.pid))
		}
	}
	return errs
}

// checkDueLocked verifies the due queue: one slot per lease, heap order,
// and every idle lease with due work queued.
func (b *Broker) checkDueLocked() []error {
	var errs []error
	items := b.due.items
	for i, e := range items {
		if e.slot != i {
			errs = append(errs, fmt.Errorf("due queue: lease %s at %d records slot %d", e.ID, i, e.slot))
		}
		if b.byID[e.ID] != e {
			errs = append(errs, fmt.Errorf("due queue holds ended lease %s", e.ID))
		}
		if i > 0 && e.due.Before(items[(i-1)/2].due) {
			errs = append(errs, fmt.Errorf("due queue out of order at %d", i))
		}
	}
	for id, e := range b.byID {
		needs := e.TTL > 0 || e.polled || (e.ownerGone && !b.reaping[id])
		if e.state == stateLive && needs && e.slot < 0 {
			errs = append(errs, fmt.Errorf("lease %s has due work but is not in the due queue", id))
		}
		if e.busy() && e.idle == nil {
			errs = append(errs, fmt.Errorf("busy lease %s has nothing to wait on", id))
		}
	}
	return errs
}
