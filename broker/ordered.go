package broker

import (
	"cmp"
	"slices"
)

// leaseKey orders leases for listing and paging: namespace, name, id.
type leaseKey struct {
	Namespace, Name, ID string
}

func keyOfLease(l *Lease) leaseKey { return leaseKey{l.Namespace, l.Name, l.ID} }

func (k leaseKey) compare(o leaseKey) int {
	return cmp.Or(cmp.Compare(k.Namespace, o.Namespace), cmp.Compare(k.Name, o.Name), cmp.Compare(k.ID, o.ID))
}

// orderedView is the visible leases in key order, so that pages of the
// table (ListLeases, a watcher's existing leases) cost a binary search and
// a page each rather than a copy of the whole table. It is rebuilt on the
// first read after a lease appears or ends; the caller holds b.mu.
type orderedView struct {
	entries []*entry
	valid   bool
	// seq counts published events.
	seq uint64
	// feeders counts watchers still feeding existing leases; while there
	// are any, born records the seq at which each lease acquired since
	// appeared, so a feeder can tell the leases that existed when it began.
	feeders int
	born    map[string]uint64
}

// invalidate marks the view stale; publish calls it for every acquire and
// end, the only changes that add or remove visible leases.
func (v *orderedView) invalidate() {
	if v.valid {
		clear(v.entries) // keep the array, drop the entries
		v.entries = v.entries[:0]
		v.valid = false
	}
}

// pageAfter returns up to n visible leases in namespace (all when empty)
// whose key is after the cursor (from the start when first), and whether
// more may follow. The caller holds b.mu.
func (b *Broker) pageAfter(namespace string, cursor leaseKey, first bool, n int) ([]Lease, bool) {
	return b.pageBornBy(namespace, cursor, first, n, ^uint64(0))
}

// pageBornBy is pageAfter limited to the leases that were visible by
// event seq.
func (b *Broker) pageBornBy(namespace string, cursor leaseKey, first bool, n int, seq uint64) ([]Lease, bool) {
	v := &b.ordered
	if !v.valid {
		v.entries = v.entries[:0]
		for _, e := range b.byID {
			if e.state != statePending {
				v.entries = append(v.entries, e)
			}
		}
		slices.SortFunc(v.entries, func(x, y *entry) int { return keyOfLease(&x.Lease).compare(keyOfLease(&y.Lease)) })
		v.valid = true
	}
	i := 0
	switch {
	case !first:
		i, _ = slices.BinarySearchFunc(v.entries, cursor, func(e *entry, k leaseKey) int {
			if c := keyOfLease(&e.Lease).compare(k); c != 0 {
				return c
			}
			return -1 // equal keys sort before: start after the cursor
		})
	case namespace != "":
		i, _ = slices.BinarySearchFunc(v.entries, namespace, func(e *entry, ns string) int { return cmp.Compare(e.Namespace, ns) })
	}
	var out []Lease
	for ; i < len(v.entries); i++ {
		e := v.entries[i]
		if namespace != "" && e.Namespace != namespace {
			if e.Namespace > namespace {
				return out, false
			}
			continue
		}
		if b.byID[e.ID] != e || e.state == statePending || v.born[e.ID] > seq {
			continue
		}
		if len(out) == n {
			return out, true
		}
		out = append(out, e.Lease)
	}
	return out, false
}
