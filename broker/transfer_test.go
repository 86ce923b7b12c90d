package broker

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

func TestTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{})
		launcher := r.procs.spawn(200)
		old := r.procs.spawn(201)
		l := r.acquire(AcquireRequest{Name: "svc", OwnerPID: 200}).Lease
		sub, err := r.b.Watch("", false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()

		// The launcher hands its lease to the service it started.
		got, err := r.b.Transfer(context.Background(), TransferRequest{LeaseID: l.ID, OwnerPID: 201, LauncherPID: 200})
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != l.ID || got.Port != l.Port || got.Key() != l.Key() || !got.Owner.Same(old) || !got.Launcher.Same(launcher) {
			t.Fatalf("transferred lease = %+v; want %s on %d owned by 201 under 200", got, l.ID, l.Port)
		}
		if ev := <-sub.Events(); ev.Type != EventTransferred || !ev.Lease.Owner.Same(old) {
			t.Errorf("event = %v owned by %d, want transferred to 201", ev.Type, ev.Lease.Owner.PID)
		}
		if stored := r.store.snapshot()[l.ID]; !stored.Owner.Same(old) {
			t.Errorf("stored owner = %d, want 201", stored.Owner.PID)
		}
		if !r.watcher.isWatched(old) || !r.watcher.isWatched(launcher) {
			t.Error("new owner or its launcher not watched")
		}

		// Now the owner's exit ends it, not the launcher's.
		r.procs.kill(201)
		r.watcher.exit(old)
		ev := <-sub.Events()
		if ev.Type != EventReclaimed || ev.Reason != ReasonOwnerExited || ev.Lease.ID != l.ID {
			t.Errorf("event = %v/%v for %s, want reclaimed/owner exited", ev.Type, ev.Reason, ev.Lease.ID)
		}
	})
}

func TestTransferOldOwnerExitKeepsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{})
		first := r.procs.spawn(200)
		l := r.acquire(AcquireRequest{Name: "svc", OwnerPID: 200}).Lease
		if _, err := r.b.Transfer(context.Background(), TransferRequest{LeaseID: l.ID, OwnerPID: 101}); err != nil {
			t.Fatal(err)
		}
		if r.watcher.isWatched(first) {
			t.Error("old owner still watched though it owns nothing")
		}
		r.procs.kill(200)
		r.watcher.exit(first)
		synctest.Wait()
		if got, err := r.b.Get(l.ID); err != nil || got.Owner.PID != 101 {
			t.Errorf("after the old owner's exit: %+v, %v; want the lease kept under 101", got, err)
		}
	})
}

func TestTransferRefusals(t *testing.T) {
	r := newRig(t, Config{})
	other := r.procs.spawn(300)
	r.procs.mu.Lock()
	other.User = "2000"
	r.procs.procs[300] = other
	r.procs.mu.Unlock()
	l := r.acquire(AcquireRequest{Name: "svc", OwnerPID: 100}).Lease
	ctx := context.Background()
	tests := []struct {
		name  string
		req   TransferRequest
		want  error
		field string
	}{
		{"no owner", TransferRequest{LeaseID: l.ID}, ErrInvalid, "owner_pid"},
		{"dead owner", TransferRequest{LeaseID: l.ID, OwnerPID: 999}, ErrInvalid, "owner_pid"},
		{"launcher is owner", TransferRequest{LeaseID: l.ID, OwnerPID: 101, LauncherPID: 101}, ErrInvalid, "launcher_pid"},
		{"bad id", TransferRequest{LeaseID: "", OwnerPID: 101}, ErrInvalid, ""},
		{"unknown lease", TransferRequest{LeaseID: "0123456789abcdef", OwnerPID: 101}, ErrNotFound, ""},
		{"caller of another user", TransferRequest{Caller: Caller{PID: 5, User: "2000"}, LeaseID: l.ID, OwnerPID: 300}, ErrPermission, ""},
		{"new owner of another user", TransferRequest{Caller: Caller{PID: 5, User: "1000"}, LeaseID: l.ID, OwnerPID: 300}, ErrPermission, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.b.Transfer(ctx, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var fe *FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("err = %v, want it to name %s", err, tt.field)
			}
		})
	}
	r.store.failNext = errors.New("disk full")
	if _, err := r.b.Transfer(ctx, TransferRequest{LeaseID: l.ID, OwnerPID: 101}); err == nil {
		t.Fatal("transfer succeeded though the store failed")
	}
	if got, _ := r.b.Get(l.ID); got.Owner.PID != 100 || r.store.snapshot()[l.ID].Owner.PID != 100 {
		t.Errorf("failed transfer changed the owner to %d", got.Owner.PID)
	}
	// An admin may hand it to another user's process.
	if got, err := r.b.Transfer(ctx, TransferRequest{Caller: Caller{PID: 5, User: "0", Admin: true}, LeaseID: l.ID, OwnerPID: 300}); err != nil || got.Owner.PID != 300 {
		t.Errorf("admin transfer: %+v, %v", got, err)
	}
}
