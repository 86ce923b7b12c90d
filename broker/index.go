package broker

import (
	"errors"
	"fmt"
)

// insert adds e to the indexes and takes its port.
func (b *Broker) insert(e *entry) {
	b.byID[e.ID] = e
	b.byName[e.Key()] = e
	b.byPort[e.Port] = e
	b.pool.take(e.Port)
	b.perUser[e.Owner.User]++
}

// removeLocked drops e from the indexes, the watch set and the due queue,
// frees its port and wakes whoever waits on it. The caller holds b.mu.
func (b *Broker) removeLocked(e *entry) {
	delete(b.byID, e.ID)
	delete(b.byName, e.Key())
	if b.perUser[e.Owner.User]--; b.perUser[e.Owner.User] <= 0 {
		delete(b.perUser, e.Owner.User)
	}
	if b.byPort[e.Port] == e {
		delete(b.byPort, e.Port)
		b.pool.give(e.Port)
	}
	for _, p := range []Process{e.Owner, e.Launcher} {
		b.unindexProcLocked(e, p)
	}
	b.due.drop(e)
	e.drop()
}

// unindexProcLocked forgets that e needs p, and stops watching p when no
// lease needs it any more. Doing this under b.mu, with the watch of the
// same process in watchProcsLocked, keeps a release of a process's last
// lease from racing an acquire that needs it watched again.
func (b *Broker) unindexProcLocked(e *entry, p Process) {
	if p.IsZero() {
		return
	}
	k := keyOf(p)
	set := b.byProc[k]
	if set == nil {
		return
	}
	delete(set, e.ID)
	if len(set) > 0 {
		return
	}
	delete(b.byProc, k)
	if wp, ok := b.watched[k]; ok {
		delete(b.watched, k)
		b.watcher.Remove(wp)
	}
}

// watchProcsLocked records e under its owner and launcher and has the exit
// watcher watch each one not yet watched. A process the watcher refuses is
// an error naming its field: a lease whose owner nobody watches could never
// be reclaimed. The caller holds b.mu; on error e stays indexed for
// removeLocked to undo.
func (b *Broker) watchProcsLocked(e *entry) error {
	for _, f := range []struct {
		field string
		p     Process
	}{{"owner_pid", e.Owner}, {"launcher_pid", e.Launcher}} {
		if f.p.IsZero() {
			continue
		}
		k := keyOf(f.p)
		set := b.byProc[k]
		if set == nil {
			set = make(map[string]*entry)
			b.byProc[k] = set
		}
		set[e.ID] = e
		if b.watcher == nil {
			continue
		}
		if _, ok := b.watched[k]; ok {
			continue
		}
		if err := b.watcher.Add(f.p); err != nil {
			if fe := (*FieldError)(nil); errors.As(err, &fe) {
				// Transports report a field error alone: name this field.
				return fieldErr(f.field, "%s cannot be watched for its exit: %s", f.p, fe.Rule)
			}
			return fmt.Errorf("%s: cannot watch %s for its exit, so its lease could never be reclaimed: %w", f.field, f.p, err)
		}
		b.watched[k] = f.p
	}
	return nil
}

// rememberLocked keeps a name's last port and owner, for the sticky port
// and for acquire with reclaim, within NameMemory names. The caller holds
// b.mu.
func (b *Broker) rememberLocked(key NameKey, port uint16, owner Process) {
	if port != 0 {
		b.lastPorts[key] = port
	}
	if !owner.IsZero() {
		b.prevOwners[key] = owner
	}
	if old, evicted := b.names.touch(key); evicted {
		delete(b.lastPorts, old)
		delete(b.prevOwners, old)
	}
}
