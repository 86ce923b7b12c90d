package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	// ErrLeaseLimit: the daemon holds as many leases as it allows in all
	// (limits.leases).
	ErrLeaseLimit = errors.New("daemon lease limit reached")
	// ErrUserLimit: the calling user holds as many leases as the daemon
	// allows one user (limits.leases_per_user).
	ErrUserLimit = errors.New("per-user lease limit reached")
	// ErrWatcherLimit: the daemon serves as many watches as it allows
	// (limits.watchers).
	ErrWatcherLimit = errors.New("watcher limit reached")
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
	st   *status.Status // the daemon's, with its details; nil when made here
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
	if e.st != nil {
		return e.st
	}
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
	// LeaseID and LeaseName name the lease holding the port, when a lease
	// does.
	LeaseID, LeaseName string
	// Message is the daemon's message, naming the holder.
	Message string
	st      *status.Status
}

func (e *PortHeldError) Error() string { return e.Message }

func (e *PortHeldError) Unwrap() error { return ErrPortHeld }

// GRPCStatus lets status.Code report codes.FailedPrecondition.
func (e *PortHeldError) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.New(codes.FailedPrecondition, e.Message)
}

// rpcError is any other error from the daemon or the transport.
type rpcError struct {
	kind  error // one of the Err* kinds, or nil
	cause error // a context error, or nil
	msg   string
	st    *status.Status
}

// ErrorReason returns the daemon's stable reason for err (its google.rpc.ErrorInfo
// reason, such as "POOL_EXHAUSTED" or "KILL_REFUSED") and the metadata that
// came with it; "" when err carries none, as from a daemon older than the
// structured details.
func ErrorReason(err error) (reason string, metadata map[string]string) {
	st, ok := status.FromError(err)
	if !ok {
		return "", nil
	}
	if info := errorInfo(st); info != nil {
		return info.GetReason(), info.GetMetadata()
	}
	return "", nil
}

// errorDomain is the ErrorInfo domain of the daemon's errors.
const errorDomain = "portbroker.dev"

// errorInfo is st's ErrorInfo from portbroker, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			return info
		}
	}
	return nil
}

// badRequest is st's first field violation, or nil.
func badRequest(st *status.Status) *errdetails.BadRequest_FieldViolation {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0]
		}
	}
	return nil
}

// reasonKinds are the error kinds of the daemon's ErrorInfo reasons.
var reasonKinds = map[string]error{
	"NOT_FOUND":         ErrNotFound,
	"POOL_EXHAUSTED":    ErrPoolExhausted,
	"LEASE_LIMIT":       ErrLeaseLimit,
	"USER_LIMIT":        ErrUserLimit,
	"WATCHER_LIMIT":     ErrWatcherLimit,
	"WATCH_OVERFLOW":    ErrWatchOverflow,
	"NAME_TAKEN":        ErrNameTaken,
	"PERMISSION_DENIED": ErrPermissionDenied,
	"KILL_REFUSED":      ErrPermissionDenied,
	"CONFLICT":          ErrConflict,
	"UNSUPPORTED":       ErrUnimplemented,
	"DAEMON_STOPPING":   ErrUnavailable,
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

// The patterns below read daemons older than the structured details,
// whose messages alone name the field, port and holder.
var (
	portRE   = regexp.MustCompile(`\bport (\d+)\b`)
	holderRE = regexp.MustCompile(`\bpid (\d+)(?: \(([^)]*)\))?`)
	fieldRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\[\]]*$`)
)

// mapError turns a gRPC error into this package's errors. It is the one
// place that knows the daemon's status codes and error details. Errors
// that carry no gRPC status (io.EOF ending a stream) pass through.
func (c *Client) mapError(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	msg := st.Message()
	info := errorInfo(st)
	switch st.Code() {
	case codes.InvalidArgument:
		if v := badRequest(st); v != nil {
			return &InvalidArgumentError{Field: v.GetField(), Rule: v.GetDescription(), st: st}
		}
		e := &InvalidArgumentError{Rule: msg, st: st}
		if field, rule, ok := strings.Cut(msg, ": "); ok && fieldRE.MatchString(field) {
			e.Field, e.Rule = field, rule
		}
		return e
	case codes.FailedPrecondition:
		e := &PortHeldError{Message: msg, st: st}
		if info != nil {
			meta := info.GetMetadata()
			e.Port, _ = strconv.Atoi(meta["port"])
			e.HolderPID, _ = strconv.Atoi(meta["holder_pid"])
			e.HolderName = meta["holder_name"]
			e.LeaseID, e.LeaseName = meta["lease_id"], meta["lease_name"]
			return e
		}
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
		return e
	case codes.Canceled:
		e.cause = context.Canceled
	case codes.DeadlineExceeded:
		e.cause = context.DeadlineExceeded
	default:
		e.msg = fmt.Sprintf("portbrokerd: %s: %s", st.Code(), msg)
	}
	if info != nil {
		// A daemon that says why is believed over the code alone: the
		// reason tells the causes of ResourceExhausted apart.
		if kind, ok := reasonKinds[info.GetReason()]; ok {
			e.kind = kind
		}
	}
	return e
}
