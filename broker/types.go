// Package broker is the port broker's domain: leases, the port pool and its
// allocator, reclaim rules and lease events. It uses the standard library
// only and reaches the host through the small interfaces in deps.go.
package broker

import (
	"fmt"
	"strings"
	"time"
)

// DefaultNamespace is the namespace of a request that names none.
const DefaultNamespace = "default"

// Protocol is the transport a lease reserves its port for.
type Protocol uint8

const (
	TCP Protocol = iota + 1
	UDP
	TCPUDP
)

// HasTCP reports whether p covers TCP.
func (p Protocol) HasTCP() bool { return p == TCP || p == TCPUDP }

// HasUDP reports whether p covers UDP.
func (p Protocol) HasUDP() bool { return p == UDP || p == TCPUDP }

// Valid reports whether p is one of the known protocols.
func (p Protocol) Valid() bool { return p >= TCP && p <= TCPUDP }

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case TCPUDP:
		return "tcp+udp"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// Process identifies a process by PID and start time, so that a reused PID
// is never taken for the process that held it before.
type Process struct {
	PID       int
	StartTime time.Time
	Name      string
	// User owns the process: a uid on Unix, a SID on Windows.
	User string
}

// Same reports whether p and q are the same process: same PID and same start
// time at millisecond precision, the precision every platform reports.
func (p Process) Same(q Process) bool {
	return p.PID == q.PID && p.StartTime.UnixMilli() == q.StartTime.UnixMilli()
}

// IsZero reports whether p names no process.
func (p Process) IsZero() bool { return p.PID == 0 }

func (p Process) String() string {
	if p.Name == "" {
		return fmt.Sprintf("pid %d", p.PID)
	}
	return fmt.Sprintf("pid %d (%s)", p.PID, p.Name)
}

// NameKey is a lease name within its namespace.
type NameKey struct {
	Namespace string
	Name      string
}

func (k NameKey) String() string { return k.Namespace + "/" + k.Name }

// Lease is one port leased to one owner process.
type Lease struct {
	ID        string
	Name      string
	Namespace string
	Port      uint16
	Protocol  Protocol
	Owner     Process
	// Launcher asked on the owner's behalf; zero when the owner asked itself.
	Launcher  Process
	CreatedAt time.Time
	// TTL is zero for a lease that lives as long as its owner.
	TTL       time.Duration
	ExpiresAt time.Time
}

// Key returns the lease's name key.
func (l Lease) Key() NameKey { return NameKey{Namespace: l.Namespace, Name: l.Name} }

// PortRange is an inclusive range of ports.
type PortRange struct {
	First, Last uint16
	// Source says who set the range aside, when known.
	Source string
}

// Contains reports whether port lies in r.
func (r PortRange) Contains(port uint16) bool { return port >= r.First && port <= r.Last }

// Len is the number of ports in r.
func (r PortRange) Len() int {
	if r.Last < r.First {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// FormatRanges joins ranges the way ParseRanges reads them.
func FormatRanges(rs []PortRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// EventType says what happened to a lease.
type EventType uint8

const (
	EventAcquired EventType = iota + 1
	EventReleased
	EventExpired
	EventReclaimed
	EventRenewed
	// EventTransferred: the lease has a new owner (Transfer).
	EventTransferred
)

// Ended reports whether t ends its lease.
func (t EventType) Ended() bool {
	return t == EventReleased || t == EventExpired || t == EventReclaimed
}

func (t EventType) String() string {
	switch t {
	case EventAcquired:
		return "acquired"
	case EventReleased:
		return "released"
	case EventExpired:
		return "expired"
	case EventReclaimed:
		return "reclaimed"
	case EventRenewed:
		return "renewed"
	case EventTransferred:
		return "transferred"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Reason says why a lease ended without its owner releasing it.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonOwnerExited
	ReasonLauncherExited
	ReasonTTLExpired
	ReasonForced
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonOwnerExited:
		return "owner exited"
	case ReasonLauncherExited:
		return "launcher exited"
	case ReasonTTLExpired:
		return "ttl expired"
	case ReasonForced:
		return "forced"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event is one change to a lease, as WatchLeases reports it.
type Event struct {
	Type   EventType
	Lease  Lease
	Reason Reason
	Time   time.Time
}

// Caller is who made a request, as the transport established it. The core
// never sees a socket, only this value.
type Caller struct {
	// PID is 0 when the transport cannot tell (loopback TCP).
	PID int
	// User is a uid on Unix or a SID on Windows; empty when unknown.
	User string
	// Admin is true for root or an elevated Windows administrator.
	Admin bool
	// Broker marks the broker acting on its own behalf (stopping an
	// orphan); a transport never sets it. Any other caller without a PID
	// may not stop processes: kill safety needs to know who asks.
	Broker bool
}
