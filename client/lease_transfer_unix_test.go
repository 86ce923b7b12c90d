//go:build unix

package client_test

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
)

// TestTransferThroughDaemon: a lease handed to another process keeps its
// ID, name and port, names the new owner and launcher, and from then on
// ends with the new owner, not the old.
func TestTransferThroughDaemon(t *testing.T) {
	c, _ := realClient(t)
	own, err := c.Acquire(t.Context(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	child := startOwner(t)

	if _, err := own.Transfer(t.Context(), 0, 0); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Transfer to pid 0: %v; want invalid owner_pid", err)
	}
	moved, err := own.Transfer(t.Context(), child, os.Getpid())
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	if moved.ID != own.ID || moved.Port != own.Port || moved.Name != "svc" || moved.OwnerPID != child || moved.LauncherPID != os.Getpid() {
		t.Fatalf("moved = %+v; want lease %s on %d owned by %d under %d", moved, own.ID, own.Port, child, os.Getpid())
	}
	select {
	case <-own.Done():
		if !errors.Is(own.Err(), client.ErrTransferred) {
			t.Errorf("old handle's Err = %v, want ErrTransferred", own.Err())
		}
	default:
		t.Error("old handle not done after the transfer")
	}
	listed := leaseByName(t, c, "svc")
	if listed == nil || listed.ID != own.ID || listed.OwnerPID != child {
		t.Fatalf("listed %+v; want %s owned by %d", listed, own.ID, child)
	}
	// Asking again for the transfer already made changes nothing.
	if _, err := own.Transfer(t.Context(), child, 0); err != nil {
		t.Errorf("repeating the same transfer: %v", err)
	}

	// The new owner's death ends the lease.
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(failAfter)
	for leaseByName(t, c, "svc") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("lease still live %v after its new owner was killed", failAfter)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := moved.Transfer(t.Context(), os.Getpid(), 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("transfer of an ended lease: %v; want ErrNotFound", err)
	}
}
