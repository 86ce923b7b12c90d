package broker

import (
	"context"
)

// Store persists leases. Each method returns only once its change is durable.
// Implementations must be safe for concurrent use, so that concurrent
// changes can share one durable write.
type Store interface {
	// Load returns every stored lease and the last port of every name.
	Load(ctx context.Context) (State, error)
	// Put stores l, replacing a lease with the same ID, and remembers
	// l.Port as the last port of l's name.
	Put(ctx context.Context, l Lease) error
	// Delete removes the leases with these IDs; unknown IDs are ignored.
	Delete(ctx context.Context, ids ...string) error
}

// State is what a Store holds.
type State struct {
	Leases    []Lease
	LastPorts map[NameKey]uint16
}

// ProcessTable looks up live processes.
type ProcessTable interface {
	// Lookup returns the live process with this PID, or an error matching
	// ErrNoProcess when there is none.
	Lookup(pid int) (Process, error)
}

// Prober binds a port to see whether a service could bind it now.
type Prober interface {
	// Probe returns nil when port binds for proto on every address family
	// the host has, else the bind error.
	Probe(port uint16, proto Protocol) error
}

// ExitWatcher reports when watched processes exit. Add and Remove may be
// called from any goroutine; Exits delivers each watched exit once.
type ExitWatcher interface {
	Add(p Process) error
	Remove(p Process)
	Exits() <-chan Process
	Close() error
}
