package broker

import "time"

// A lease entry moves through these states, and only these ways:
//
//	pending --commit--> live          acquire made it durable
//	pending --drop----> (gone)        acquire failed or was refused
//	live    --begin---> changing      a renew or an end starts its store write
//	changing --settle-> live          the write failed, or a renew succeeded
//	changing --drop---> (gone)        an end succeeded
//
// Every transition happens under Broker.mu, together with the indexes, the
// watch set and the due queue. A pending or changing entry is busy: other
// changes wait for it (idle), and exits seen meanwhile are recorded in
// ownerGone and launcherGone and acted on when it settles.
type entryState uint8

const (
	// statePending: acquired in memory, not yet durable; invisible to readers.
	statePending entryState = iota
	// stateLive: durable and idle.
	stateLive
	// stateChanging: a renew or an end is being made durable.
	stateChanging
)

type entry struct {
	Lease
	state entryState
	// idle is closed when the entry stops being busy (settled, committed or
	// dropped); nil while it is live.
	idle chan struct{}
	// ownerGone records that the owner's exit was reported; the lease is
	// reclaimed as soon as it is idle.
	ownerGone bool
	// launcherGone records that the launcher's exit was reported; the
	// orphan rule runs once (orphanDone) when the lease is idle.
	launcherGone bool
	orphanDone   bool
	// polled is set when no exit watcher watches the owner; the due queue
	// then looks the owner up every pollEvery.
	polled bool
	// due and slot place the entry in the due queue; slot is -1 when the
	// entry is not queued.
	due  time.Time
	slot int
}

func newEntry(l Lease, s entryState) *entry {
	e := &entry{Lease: l, state: s, slot: -1}
	if s != stateLive {
		e.idle = make(chan struct{})
	}
	return e
}

// busy reports whether a change is under way.
func (e *entry) busy() bool { return e.state != stateLive }

// begin marks a live entry as changing.
func (e *entry) begin() {
	if e.state != stateLive {
		panic("broker: begin on a busy lease")
	}
	e.state = stateChanging
	e.idle = make(chan struct{})
}

// settle ends a change (or commits a pending entry): the entry is live again
// and whoever waited for it runs.
func (e *entry) settle() {
	if e.state == stateLive {
		panic("broker: settle on an idle lease")
	}
	e.state = stateLive
	close(e.idle)
	e.idle = nil
}

// drop ends a busy entry for good; waiters find it gone.
func (e *entry) drop() {
	if e.idle != nil {
		close(e.idle)
		e.idle = nil
	}
}

// procKey identifies a process for the watch index.
type procKey struct {
	pid   int
	start int64
}

func keyOf(p Process) procKey { return procKey{p.PID, p.StartTime.UnixMilli()} }
