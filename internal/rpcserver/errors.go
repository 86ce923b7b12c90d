package rpcserver

import (
	"context"
	"errors"
	"strconv"

	"github.com/portbroker/portbroker/broker"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// ErrorDomain is the ErrorInfo domain of every error the daemon returns.
const ErrorDomain = "portbroker.dev"

// Reasons are the stable ErrorInfo reasons; clients match on them, never on
// message text, so they never change once released.
const (
	ReasonInvalidArgument  = "INVALID_ARGUMENT"
	ReasonNotFound         = "NOT_FOUND"
	ReasonPoolExhausted    = "POOL_EXHAUSTED"
	ReasonLeaseLimit       = "LEASE_LIMIT"
	ReasonUserLimit        = "USER_LIMIT"
	ReasonWatcherLimit     = "WATCHER_LIMIT"
	ReasonExhausted        = "RESOURCE_EXHAUSTED"
	ReasonWatchOverflow    = "WATCH_OVERFLOW"
	ReasonPortHeld         = "PORT_HELD"
	ReasonNameTaken        = "NAME_TAKEN"
	ReasonMismatch         = "LEASE_MISMATCH"
	ReasonPermissionDenied = "PERMISSION_DENIED"
	ReasonKillRefused      = "KILL_REFUSED"
	ReasonConflict         = "CONFLICT"
	ReasonUnsupported      = "UNSUPPORTED"
	ReasonStopping         = "DAEMON_STOPPING"
	ReasonDeadline         = "DEADLINE_EXCEEDED"
	ReasonCanceled         = "CANCELED"
	ReasonInternal         = "INTERNAL"
)

// toStatus maps a broker error to its gRPC status: the one place where
// error kinds become codes and structured details (the richer error model:
// BadRequest for bad input, ErrorInfo with a stable reason otherwise, and
// PreconditionFailure naming the holder of a strict port).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *broker.FieldError
	if errors.As(err, &fe) {
		// The message starts with the field, so clients can name it.
		return invalidArgument(fe.Field, fe.Rule, fe.Error())
	}
	code, reason := codes.Internal, ReasonInternal
	meta := map[string]string{}
	var extra []protoadapt.MessageV1
	var held *broker.PortHeldError
	var refused *broker.KillRefusedError
	switch {
	case errors.Is(err, broker.ErrInvalid):
		return invalidArgument("", err.Error(), err.Error())
	case errors.Is(err, broker.ErrNotFound):
		code, reason = codes.NotFound, ReasonNotFound
	case errors.Is(err, broker.ErrExhausted):
		code, reason = codes.ResourceExhausted, exhaustedReason(err)
	case errors.As(err, &held):
		code, reason = codes.FailedPrecondition, ReasonPortHeld
		meta, extra = portHeldDetails(held)
	case errors.Is(err, broker.ErrPortHeld):
		code, reason = codes.FailedPrecondition, ReasonPortHeld
	case errors.Is(err, broker.ErrMismatch):
		code, reason = codes.FailedPrecondition, ReasonMismatch
	case errors.Is(err, broker.ErrNameTaken):
		code, reason = codes.AlreadyExists, ReasonNameTaken
	case errors.As(err, &refused):
		code, reason = codes.PermissionDenied, ReasonKillRefused
		meta["pid"] = strconv.Itoa(refused.PID)
		if refused.Name != "" {
			meta["name"] = refused.Name
		}
		meta["rule"] = refused.Reason
	case errors.Is(err, broker.ErrPermission):
		code, reason = codes.PermissionDenied, ReasonPermissionDenied
	case errors.Is(err, broker.ErrConflict):
		code, reason = codes.Aborted, ReasonConflict
	case errors.Is(err, broker.ErrUnsupported):
		code, reason = codes.Unimplemented, ReasonUnsupported
	case errors.Is(err, broker.ErrClosed):
		code, reason = codes.Unavailable, ReasonStopping
	case errors.Is(err, context.DeadlineExceeded):
		code, reason = codes.DeadlineExceeded, ReasonDeadline
	case errors.Is(err, context.Canceled):
		code, reason = codes.Canceled, ReasonCanceled
	}
	return withInfo(code, err.Error(), reason, meta, extra...)
}

// statusError is a status made here rather than from a broker error, with
// its ErrorInfo.
func statusError(code codes.Code, reason, msg string) error {
	return withInfo(code, msg, reason, nil)
}

// invalidArgument is an InvalidArgument status whose BadRequest names the
// field (when known) and the rule.
func invalidArgument(field, rule, msg string) error {
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: rule}}}
	info := &errdetails.ErrorInfo{Reason: ReasonInvalidArgument, Domain: ErrorDomain}
	if field != "" {
		info.Metadata = map[string]string{"field": field}
	}
	if withDetails, err := st.WithDetails(br, info); err == nil {
		st = withDetails
	}
	return st.Err()
}

func withInfo(code codes.Code, msg, reason string, meta map[string]string, extra ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	if len(meta) == 0 {
		meta = nil
	}
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: meta}}, extra...)
	// WithDetails fails only for a message that cannot be marshalled, which
	// these never are; the plain status still carries code and message.
	if withDetails, err := st.WithDetails(details...); err == nil {
		st = withDetails
	}
	return st.Err()
}

func exhaustedReason(err error) string {
	switch {
	case errors.Is(err, broker.ErrPoolExhausted):
		return ReasonPoolExhausted
	case errors.Is(err, broker.ErrLeaseLimit):
		return ReasonLeaseLimit
	case errors.Is(err, broker.ErrUserLimit):
		return ReasonUserLimit
	case errors.Is(err, broker.ErrWatcherLimit):
		return ReasonWatcherLimit
	}
	return ReasonExhausted
}

// portHeldDetails describes the holder of a strict port: in the
// ErrorInfo's metadata for programs, and as a PreconditionFailure whose
// subject is the port and whose description names the holder.
func portHeldDetails(e *broker.PortHeldError) (map[string]string, []protoadapt.MessageV1) {
	meta := map[string]string{"port": strconv.Itoa(int(e.Port))}
	holder := e.Detail
	switch {
	case e.Lease != nil:
		meta["lease_id"] = e.Lease.ID
		meta["lease_name"] = e.Lease.Name
		meta["lease_namespace"] = e.Lease.Namespace
		meta["holder_pid"] = strconv.Itoa(e.Lease.Owner.PID)
		if e.Lease.Owner.Name != "" {
			meta["holder_name"] = e.Lease.Owner.Name
		}
		holder = "leased to " + e.Lease.Namespace + "/" + e.Lease.Name + " by " + e.Lease.Owner.String()
	case !e.Holder.IsZero():
		meta["holder_pid"] = strconv.Itoa(e.Holder.PID)
		if e.Holder.Name != "" {
			meta["holder_name"] = e.Holder.Name
		}
		holder = "held by " + e.Holder.String()
	}
	if e.Detail != "" {
		meta["bind_error"] = e.Detail
	}
	if holder == "" {
		holder = "held"
	}
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type:        ReasonPortHeld,
		Subject:     "port/" + strconv.Itoa(int(e.Port)),
		Description: holder,
	}}}
	return meta, []protoadapt.MessageV1{pf}
}
