package broker

type entryState uint8

const (
	// pending: acquired in memory, not yet durable; invisible to readers.
	statePending entryState = iota
	stateLive
	// stateBusy: a renew or an end is being made durable.
	stateBusy
)

type entry struct {
	Lease
	state entryState
}

// procKey identifies a process for the watch index.
type procKey struct {
	pid   int
	start int64
}

func keyOf(p Process) procKey { return procKey{p.PID, p.StartTime.UnixMilli()} }
