package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestOwnerCallerParent: the daemon makes the caller's parent the owner
// from the caller the transport named, and refuses the option with an
// owner_pid, for a caller it could not name, or for one whose parent is
// init.
func TestOwnerCallerParent(t *testing.T) {
	r, h := newHostRig(t, Config{})
	shell := h.spawnChild(400, 0)
	h.spawnChild(401, 400) // brokerctl, the caller
	h.spawnChild(402, 1)
	res, err := r.b.Acquire(context.Background(), AcquireRequest{Caller: Caller{PID: 401, User: "1000"}, Name: "web", OwnerCallerParent: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Lease.Owner.Same(shell) {
		t.Errorf("owner %v; want the caller's parent %v", res.Lease.Owner, shell)
	}
	for _, tt := range []struct {
		name string
		req  AcquireRequest
		want string
	}{
		{"with owner_pid", AcquireRequest{Caller: Caller{PID: 401}, OwnerPID: 400}, "cannot be combined with owner_pid"},
		{"unnamed caller", AcquireRequest{}, "could not name the caller"},
		{"parent is init", AcquireRequest{Caller: Caller{PID: 402}}, "no parent but init"},
		{"caller gone", AcquireRequest{Caller: Caller{PID: 4999}}, "could not be looked up"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Name, tt.req.OwnerCallerParent = "api", true
			_, err := r.b.Acquire(context.Background(), tt.req)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "owner_caller_parent" || !strings.Contains(fe.Rule, tt.want) {
				t.Errorf("err = %v; want a field error on owner_caller_parent saying %q", err, tt.want)
			}
		})
	}
}
