package broker

import (
	"context"
	"strconv"
	"time"
)

// Store persists leases. Each method returns only once its change is written
// where a crash of the daemon cannot lose it; it need not be synced to disk,
// since what a power loss takes (the leases of a boot that ended) is void
// anyway. Implementations must be safe for concurrent use, so that
// concurrent changes can share one write.
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

// ProcessInfo is what the broker knows of a process when it reports or
// stops it.
type ProcessInfo struct {
	Process
	Exe     string
	Cmdline []string
	// PPID is the parent's PID; ParentAlive is false when the parent is gone
	// (on Windows, also when the PID now belongs to a process that started
	// after this one, since Windows reuses parent PIDs).
	PPID        int
	ParentAlive bool
	// KernelThread is true for kernel threads, which have no user space to stop.
	KernelThread bool
	// SessionLeader is true for the leader of a login session (Unix setsid
	// leader whose session is a login, such as a shell's sshd or login parent).
	SessionLeader bool
	// System is true for processes the OS runs for itself (Windows services
	// host, LocalSystem processes, Unix daemons owned by root with no
	// terminal); the broker never stops them.
	System bool
	// LocalAddr and Protocol say how the process holds a port, when it was
	// found as a holder.
	LocalAddr string
	Protocol  Protocol
}

// ProcessInspector reads full facts about processes.
type ProcessInspector interface {
	// Inspect returns the facts of a live process, or an error matching
	// ErrNoProcess.
	Inspect(pid int) (ProcessInfo, error)
	// Descendants returns the live descendants of p, children before
	// grandchildren. A process counts as a child only if it started no
	// earlier than its parent, so reused parent PIDs are not followed.
	Descendants(p Process) ([]ProcessInfo, error)
}

// PortHolders finds the processes that hold a port.
type PortHolders interface {
	// Holders returns every process with a socket bound to port for proto
	// (TCP listeners and bound UDP sockets, IPv4 and IPv6), with LocalAddr
	// and Protocol set. A port held by a socket whose process cannot be seen
	// yields no entry rather than an error.
	Holders(port uint16, proto Protocol) ([]ProcessInfo, error)
}

// Killer stops processes. Both methods act only if p is still the same
// process (PID and start time), and return an error matching ErrNoProcess
// when it has already exited.
type Killer interface {
	// Terminate asks p to stop: SIGTERM on Unix, CTRL_BREAK or WM_CLOSE on
	// Windows.
	Terminate(p Process) error
	// Kill stops p at once: SIGKILL on Unix, TerminateProcess on Windows.
	Kill(p Process) error
}

// BootSource names the boot the host is in. Two calls in one boot return
// the same id; a store written in another boot voids its leases, since
// every owner died with that boot.
type BootSource interface {
	BootID() (string, error)
}

// BootTimePrefix starts a boot id made from the boot time, on hosts that
// keep no boot UUID. Such ids are compared with a slack, since the OS moves
// its boot time when the wall clock is stepped.
const BootTimePrefix = "boottime:"

// BootTimeID is the boot id of a host that booted at t.
func BootTimeID(t time.Time) string {
	return BootTimePrefix + strconv.FormatInt(t.Unix(), 10)
}
