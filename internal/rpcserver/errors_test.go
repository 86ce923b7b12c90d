package rpcserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portbroker/portbroker/broker"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("wrapped: %w", &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}), codes.InvalidArgument, "port: must be from 1 to 65535"},
		{fmt.Errorf("lease x: %w", broker.ErrNotFound), codes.NotFound, "lease x: not found"},
		{fmt.Errorf("pool: %w", broker.ErrExhausted), codes.ResourceExhausted, ""},
		{&broker.PortHeldError{Port: 8000, Holder: broker.Process{PID: 42, Name: "python3"}}, codes.FailedPrecondition, "port 8000 is held by pid 42 (python3)"},
		{fmt.Errorf("x: %w", broker.ErrNameTaken), codes.AlreadyExists, ""},
		{&broker.KillRefusedError{PID: 1, Reason: "init"}, codes.PermissionDenied, "will not stop pid 1: init"},
		{fmt.Errorf("x: %w", broker.ErrConflict), codes.Aborted, ""},
		{fmt.Errorf("x: %w", broker.ErrUnsupported), codes.Unimplemented, ""},
		{broker.ErrClosed, codes.Unavailable, ""},
		{context.DeadlineExceeded, codes.DeadlineExceeded, ""},
		{context.Canceled, codes.Canceled, ""},
		{errors.New("disk on fire"), codes.Internal, "disk on fire"},
		{status.Error(codes.Unauthenticated, "kept"), codes.Unauthenticated, "kept"},
	}
	for _, tt := range tests {
		st := status.Convert(toStatus(tt.err))
		if st.Code() != tt.code {
			t.Errorf("toStatus(%v) code = %v, want %v", tt.err, st.Code(), tt.code)
		}
		if tt.msg != "" && st.Message() != tt.msg {
			t.Errorf("toStatus(%v) message = %q, want %q", tt.err, st.Message(), tt.msg)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
