//go:build unix

package unix

import (
	"runtime"
	"sync"

	"github.com/portbroker/portbroker/broker"
)

// Host answers the broker's questions about this machine. Its methods are
// safe for concurrent use.
type Host struct {
	// families lists the address families this host can open sockets in,
	// decided on first use.
	families func() []family
	procs    procTable
}

// New returns the host.
func New() *Host {
	h := &Host{
		families: sync.OnceValue(detectFamilies),
		procs:    newProcTable(),
	}
	// The process table may hold descriptors (Linux pidfds); a Host that
	// is dropped lets them go.
	runtime.AddCleanup(h, func(t procTable) { t.close() }, h.procs)
	return h
}

// Lookup returns the live process with this PID, or an error matching
// broker.ErrNoProcess when there is none or it has exited but not been
// reaped. Two Lookups of one live process return processes that are Same.
func (h *Host) Lookup(pid int) (broker.Process, error) {
	return h.procs.lookup(pid)
}

var (
	_ broker.ProcessTable = (*Host)(nil)
	_ broker.Prober       = (*Host)(nil)
)
