package broker

import (
	"errors"
	"fmt"
)

// Error kinds. Every error the broker returns matches one of these with
// errors.Is, so transports map them to status codes in one place.
var (
	ErrInvalid  = errors.New("invalid argument")
	ErrNotFound = errors.New("not found")
	// ErrExhausted is the kind every limit below matches.
	ErrExhausted   = errors.New("resource exhausted")
	ErrPortHeld    = errors.New("port held")
	ErrNameTaken   = errors.New("name taken")
	ErrPermission  = errors.New("permission denied")
	ErrConflict    = errors.New("lease is being changed")
	ErrUnsupported = errors.New("not supported on this platform")
	ErrClosed      = errors.New("broker closed")
	// ErrMismatch: the caller already holds this name with other options
	// (protocol, strict port or TTL); transports map it to
	// FailedPrecondition.
	ErrMismatch = errors.New("lease exists with other options")
	// ErrNoProcess is returned by ProcessTable.Lookup for a PID with no process.
	ErrNoProcess = errors.New("no such process")
)

// The causes of ErrExhausted, each matching it with errors.Is, so that
// clients can tell an empty pool from a limit.
var (
	ErrPoolExhausted = exhaustedError("port pool exhausted")
	ErrLeaseLimit    = exhaustedError("daemon lease limit reached")
	ErrUserLimit     = exhaustedError("per-user lease limit reached")
	ErrWatcherLimit  = exhaustedError("watcher limit reached")
)

type exhaustedError string

func (e exhaustedError) Error() string        { return string(e) }
func (e exhaustedError) Is(target error) bool { return target == ErrExhausted }

// FieldError is bad input in one request field.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// Unwrap makes a FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// PortHeldError says who holds a port that a strict request asked for.
type PortHeldError struct {
	Port uint16
	// Holder is the process holding the port, when known.
	Holder Process
	// Lease is set when another lease holds the port.
	Lease *Lease
	// Detail is the bind error in words when no holder is known.
	Detail string
}

func (e *PortHeldError) Error() string {
	switch {
	case e.Lease != nil:
		return fmt.Sprintf("port %d is leased to %s/%s by %s", e.Port, e.Lease.Namespace, e.Lease.Name, e.Lease.Owner)
	case !e.Holder.IsZero():
		return fmt.Sprintf("port %d is held by %s", e.Port, e.Holder)
	case e.Detail != "":
		return fmt.Sprintf("port %d does not bind: %s", e.Port, e.Detail)
	}
	return fmt.Sprintf("port %d is held", e.Port)
}

// Unwrap makes a PortHeldError match ErrPortHeld.
func (e *PortHeldError) Unwrap() error { return ErrPortHeld }
