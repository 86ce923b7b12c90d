//go:build unix

package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/portbroker/portbroker/broker/boltstore"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// bootHost is the platform's host in a boot of the test's choosing.
type bootHost struct {
	Host
	id string
}

func (h bootHost) BootID() (string, error) { return h.id, nil }

func startDaemonIn(t *testing.T, cfg Config, boot string) *daemonRun {
	t.Helper()
	return startDaemonOn(t, cfg, bootHost{testHost(), boot})
}

// A simulated reboot (a new boot id) voids every lease, even one whose
// owner PID is still running (in a real reboot it would be another
// process), and a name gets its port from before the reboot again.
func TestRebootVoidsLeasesKeepsStickyPorts(t *testing.T) {
	cfg := testConfig(t)
	owner := startChild(t)
	ctx := ctxT(t)

	d := startDaemonIn(t, cfg, "boot-a")
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	ports := map[string]uint32{}
	for _, name := range []string{"web", "api", "db"} {
		res, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: name, OwnerPid: int32(owner.Process.Pid)})
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = res.GetLease().GetPort()
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	// A restart in the same boot keeps the leases.
	d = startDaemonIn(t, cfg, "boot-a")
	c = brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	list, err := c.ListLeases(ctx, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetLeases()); n != 3 {
		t.Fatalf("restart in the same boot: %d leases, want 3", n)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = startDaemonIn(t, cfg, "boot-b")
	c = brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	list, err = c.ListLeases(ctx, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetLeases()); n != 0 {
		t.Fatalf("after a reboot: %d leases, want none: %v", n, list.GetLeases())
	}
	// Ask in another order than before, so a port that merely comes
	// first from the pool cannot pass for a remembered one.
	for _, name := range []string{"db", "api", "web"} {
		res, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: name, OwnerPid: int32(owner.Process.Pid)})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.GetLease().GetPort(); got != ports[name] {
			t.Errorf("after a reboot %s got port %d, want its port from before, %d", name, got, ports[name])
		}
	}
}

// A store torn within the boot stops the daemon; after a reboot the daemon
// starts clean.
func TestTornStoreRefusedUnlessRebooted(t *testing.T) {
	cfg := testConfig(t)
	d := startDaemonIn(t, cfg, "boot-a")
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	if _, err := c.AcquireLease(ctxT(t), &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(os.Getpid())}); err != nil {
		t.Fatal(err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.StateDir, StoreFile)
	if err := os.Truncate(path, 4096+100); err != nil {
		t.Fatal(err)
	}

	if d, err := New(context.Background(), cfg, bootHost{testHost(), "boot-a"}, nil); err == nil {
		d.Close()
		t.Fatal("daemon started on a torn store in the same boot")
	} else if !errors.Is(err, boltstore.ErrCorrupt) {
		t.Fatalf("start on a torn store in the same boot: %v, want ErrCorrupt", err)
	}

	d = startDaemonIn(t, cfg, "boot-b")
	c = brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	list, err := c.ListLeases(ctxT(t), &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetLeases()); n != 0 {
		t.Errorf("after a reboot on a torn store: %d leases, want none", n)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Errorf("torn files kept: %v, want one", aside)
	}
}
