package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error kinds. Every error from the daemon matches at most one of these
// with errors.Is; transport failures match ErrUnavailable, and a context's
// end matches context.Canceled or context.DeadlineExceeded.
var (
	// ErrInvalidArgument: the request was malformed; see *InvalidArgumentError.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: no such lease.
	ErrNotFound = errors.New("not found")
	// ErrPoolExhausted: every port in the broker's pool is taken.
	ErrPoolExhausted = errors.New("port pool exhausted")
	// ErrPortHeld: a strict request's port is held; see *PortHeldError.
	ErrPortHeld = errors.New("port held")
	// ErrNameTaken: another live owner holds a lease of this name.
	ErrNameTaken = errors.New("name taken")
	// ErrPermissionDenied: the lease or process belongs to another user, or
	// is a system process.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrConflict: the lease was being changed concurrently; retrying may
	// succeed.
	ErrConflict = errors.New("lease is being changed")
	// ErrUnimplemented: the daemon does not do this on its platform, or is
	// older than the client.
	ErrUnimplemented = errors.New("not implemented")
	// ErrUnavailable: no daemon answers at the address.
	ErrUnavailable = errors.New("portbrokerd unavailable")
	// ErrWatchOverflow: a watch fell too far behind and the daemon dropped
	// it; list again and start a new watch.
	ErrWatchOverflow = errors.New("watch fell behind and was dropped")
)

// InvalidArgumentError is a request the daemon (or the client, before
// sending it) refused. It matches ErrInvalidArgument.
type InvalidArgumentError struct {
	// Field is the request field at fault, such as "port" or "ttl"; empty
	// when the message names none.
	Field string
	// Rule is what the field must be.
	Rule string
}

func (e *InvalidArgumentError) Error() string {
	if e.Field == "" {
		return e.Rule
	}
	return e.Field + ": " + e.Rule
}

func (e *InvalidArgumentError) Unwrap() error { return ErrInvalidArgument }

// GRPCStatus lets status.Code report codes.InvalidArgument.
func (e *InvalidArgumentError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// PortHeldError says that a strict request's port is held, and by whom
// when the daemon could tell. It matches ErrPortHeld.
type PortHeldError struct {
	// Port is the port asked for; 0 when the message does not say.
	Port int
	// HolderPID and HolderName identify the holding process; zero when
	// unknown.
	HolderPID  int
	HolderName string
	// Message is the daemon's message, naming the holder.
	Message string
}

func (e *PortHeldError) Error() string { return e.Message }

func (e *PortHeldError) Unwrap() error { return ErrPortHeld }

// GRPCStatus lets status.Code report codes.FailedPrecondition.
func (e *PortHeldError) GRPCStatus() *status.Status {
	return status.New(codes.FailedPrecondition, e.Message)
}

// rpcError is any other error from the daemon or the transport.
type rpcError struct {
	kind  error // one of the Err* kinds, or nil
	cause error // a context error, or nil
	msg   string
	st    *status.Status
}

func (e *rpcError) Error() string { return e.msg }

func (e *rpcError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (e *rpcError) GRPCStatus() *status.Status {
	if e.st == nil {
		return status.New(codes.Unavailable, e.msg)
	}
	return e.st
}

var (
	portRE   = regexp.MustCompile(`\bport (\d+)\b`)
	holderRE = regexp.MustCompile(`\bpid (\d+)(?: \(([^)]*)\))?`)
	fieldRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\[\]]*$`)
)

// mapError turns a gRPC error into this package's errors. It is the one
// place that knows the daemon's status codes. Errors that carry no gRPC
// status (io.EOF ending a stream) pass through.
func (c *Client) mapError(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		e := &InvalidArgumentError{Rule: msg}
		if field, rule, ok := strings.Cut(msg, ": "); ok && fieldRE.MatchString(field) {
			e.Field, e.Rule = field, rule
		}
		return e
	case codes.FailedPrecondition:
		e := &PortHeldError{Message: msg}
		if m := portRE.FindStringSubmatch(msg); m != nil {
			e.Port, _ = strconv.Atoi(m[1])
		}
		if m := holderRE.FindStringSubmatch(msg); m != nil {
			e.HolderPID, _ = strconv.Atoi(m[1])
			e.HolderName = m[2]
		}
		return e
	}
	e := &rpcError{msg: msg, st: st}
	switch st.Code() {
	case codes.NotFound:
		e.kind = ErrNotFound
	case codes.ResourceExhausted:
		e.kind = ErrPoolExhausted
	case codes.AlreadyExists:
		e.kind = ErrNameTaken
	case codes.PermissionDenied:
		e.kind = ErrPermissionDenied
	case codes.Aborted:
		e.kind = ErrConflict
	case codes.Unimplemented:
		e.kind = ErrUnimplemented
	case codes.Unavailable:
		e.kind = ErrUnavailable
		e.msg = fmt.Sprintf("portbrokerd at %s unavailable: %s", c.addr, msg)
	case codes.Canceled:
		e.cause = context.Canceled
	case codes.DeadlineExceeded:
		e.cause = context.DeadlineExceeded
	default:
		e.msg = fmt.Sprintf("portbrokerd: %s: %s", st.Code(), msg)
	}
	return e
}
