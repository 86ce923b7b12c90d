package broker

import (
	"cmp"
	"fmt"
	"slices"
)

// Get returns the live lease with this id.
func (b *Broker) Get(id string) (Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.byID[id]
	if e == nil || e.state == statePending {
		return Lease{}, fmt.Errorf("lease %s: %w", id, ErrNotFound)
	}
	return e.Lease, nil
}

// List returns the live leases, sorted by namespace, name and id. An empty
// namespace lists all of them.
func (b *Broker) List(namespace string) []Lease {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listLocked(namespace)
}

func (b *Broker) listLocked(namespace string) []Lease {
	out := make([]Lease, 0, len(b.byID))
	for _, e := range b.byID {
		if e.state != statePending && (namespace == "" || e.Namespace == namespace) {
			out = append(out, e.Lease)
		}
	}
	slices.SortFunc(out, func(x, y Lease) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.ID, y.ID))
	})
	return out
}

// Status is a snapshot of the pool and the leases.
type Status struct {
	Pool        PortRange
	Ephemeral   PortRange
	Reserved    []PortRange
	Excluded    []PortRange
	PoolSize    int
	PoolFree    int
	Leases      int
	ByNamespace map[string]int
}

// Status returns a snapshot of the pool and the leases.
func (b *Broker) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{
		Pool:        b.pool.rng,
		Ephemeral:   b.pool.cfg.Ephemeral,
		Reserved:    slices.Clone(b.pool.cfg.Reserved),
		Excluded:    slices.Clone(b.pool.cfg.Exclude),
		PoolSize:    b.pool.size,
		PoolFree:    b.pool.free,
		ByNamespace: make(map[string]int),
	}
	for _, e := range b.byID {
		if e.state != statePending {
			s.Leases++
			s.ByNamespace[e.Namespace]++
		}
	}
	return s
}
