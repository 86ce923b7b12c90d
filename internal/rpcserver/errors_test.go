package rpcserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portbroker/portbroker/broker"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	lease := &broker.Lease{ID: "abc", Name: "web", Namespace: "default", Owner: broker.Process{PID: 7, Name: "node"}}
	tests := []struct {
		err    error
		code   codes.Code
		msg    string
		reason string // "" for a status passed through unchanged
		meta   map[string]string
	}{
		{fmt.Errorf("wrapped: %w", &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}), codes.InvalidArgument, "port: must be from 1 to 65535", ReasonInvalidArgument, map[string]string{"field": "port"}},
		{fmt.Errorf("lease x: %w", broker.ErrNotFound), codes.NotFound, "lease x: not found", ReasonNotFound, nil},
		{fmt.Errorf("pool: %w", broker.ErrExhausted), codes.ResourceExhausted, "", ReasonExhausted, nil},
		{fmt.Errorf("acquire: %w", broker.ErrPoolExhausted), codes.ResourceExhausted, "", ReasonPoolExhausted, nil},
		{fmt.Errorf("acquire: %w", broker.ErrLeaseLimit), codes.ResourceExhausted, "", ReasonLeaseLimit, nil},
		{fmt.Errorf("acquire: %w", broker.ErrUserLimit), codes.ResourceExhausted, "", ReasonUserLimit, nil},
		{fmt.Errorf("watch: %w", broker.ErrWatcherLimit), codes.ResourceExhausted, "", ReasonWatcherLimit, nil},
		{&broker.PortHeldError{Port: 8000, Holder: broker.Process{PID: 42, Name: "python3"}}, codes.FailedPrecondition, "port 8000 is held by pid 42 (python3)", ReasonPortHeld,
			map[string]string{"port": "8000", "holder_pid": "42", "holder_name": "python3"}},
		{fmt.Errorf("acquire: %w", &broker.PortHeldError{Port: 3000, Lease: lease}), codes.FailedPrecondition, "", ReasonPortHeld,
			map[string]string{"port": "3000", "holder_pid": "7", "holder_name": "node", "lease_id": "abc", "lease_name": "web", "lease_namespace": "default"}},
		{&broker.PortHeldError{Port: 9000, Detail: "address already in use"}, codes.FailedPrecondition, "", ReasonPortHeld,
			map[string]string{"port": "9000", "bind_error": "address already in use"}},
		{fmt.Errorf("x: %w", broker.ErrNameTaken), codes.AlreadyExists, "", ReasonNameTaken, nil},
		{&broker.KillRefusedError{PID: 1, Reason: "init"}, codes.PermissionDenied, "will not stop pid 1: init", ReasonKillRefused, map[string]string{"pid": "1", "rule": "init"}},
		{fmt.Errorf("lease: %w", broker.ErrPermission), codes.PermissionDenied, "", ReasonPermissionDenied, nil},
		{fmt.Errorf("x: %w", broker.ErrConflict), codes.Aborted, "", ReasonConflict, nil},
		{fmt.Errorf("x: %w", broker.ErrUnsupported), codes.Unimplemented, "", ReasonUnsupported, nil},
		{broker.ErrClosed, codes.Unavailable, "", ReasonStopping, nil},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "", ReasonDeadline, nil},
		{context.Canceled, codes.Canceled, "", ReasonCanceled, nil},
		{errors.New("disk on fire"), codes.Internal, "disk on fire", ReasonInternal, nil},
		{status.Error(codes.Unauthenticated, "kept"), codes.Unauthenticated, "kept", "", nil},
	}
	for _, tt := range tests {
		st := status.Convert(toStatus(tt.err))
		if st.Code() != tt.code {
			t.Errorf("toStatus(%v) code = %v, want %v", tt.err, st.Code(), tt.code)
		}
		if tt.msg != "" && st.Message() != tt.msg {
			t.Errorf("toStatus(%v) message = %q, want %q", tt.err, st.Message(), tt.msg)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		if tt.reason == "" {
			if info != nil {
				t.Errorf("toStatus(%v) added ErrorInfo %v to a status it was given", tt.err, info)
			}
			continue
		}
		if info == nil {
			t.Errorf("toStatus(%v) has no ErrorInfo; details %v", tt.err, st.Details())
			continue
		}
		if info.GetReason() != tt.reason || info.GetDomain() != ErrorDomain {
			t.Errorf("toStatus(%v) ErrorInfo = %s/%s, want %s/%s", tt.err, info.GetDomain(), info.GetReason(), ErrorDomain, tt.reason)
		}
		if len(info.GetMetadata()) != len(tt.meta) {
			t.Errorf("toStatus(%v) metadata = %v, want %v", tt.err, info.GetMetadata(), tt.meta)
		}
		for k, v := range tt.meta {
			if info.GetMetadata()[k] != v {
				t.Errorf("toStatus(%v) metadata[%s] = %q, want %q", tt.err, k, info.GetMetadata()[k], v)
			}
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}

func TestToStatusBadRequestNamesTheField(t *testing.T) {
	st := status.Convert(toStatus(fmt.Errorf("acquire: %w", &broker.FieldError{Field: "ttl", Rule: "must be 0 or at least 1s"})))
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil || len(br.GetFieldViolations()) != 1 {
		t.Fatalf("details = %v, want one BadRequest field violation", st.Details())
	}
	if v := br.GetFieldViolations()[0]; v.GetField() != "ttl" || v.GetDescription() != "must be 0 or at least 1s" {
		t.Errorf("violation = %v, want field ttl with the rule", v)
	}
}

func TestToStatusPreconditionFailureNamesTheHolder(t *testing.T) {
	st := status.Convert(toStatus(&broker.PortHeldError{Port: 8000, Holder: broker.Process{PID: 42, Name: "python3"}}))
	var pf *errdetails.PreconditionFailure
	for _, d := range st.Details() {
		if p, ok := d.(*errdetails.PreconditionFailure); ok {
			pf = p
		}
	}
	if pf == nil || len(pf.GetViolations()) != 1 {
		t.Fatalf("details = %v, want one PreconditionFailure violation", st.Details())
	}
	v := pf.GetViolations()[0]
	if v.GetType() != ReasonPortHeld || v.GetSubject() != "port/8000" || v.GetDescription() != "held by pid 42 (python3)" {
		t.Errorf("violation = %v", v)
	}
}
