package broker

import (
	"errors"
	"fmt"
)

// Check verifies that the broker's indexes and its pool agree: every lease
// is indexed once by id, name and port, no port is held twice, and the
// pool's free set is exactly the allowed ports minus the leased and the
// resting ones. Tests run it after load; it takes the lock for a full pass.
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
