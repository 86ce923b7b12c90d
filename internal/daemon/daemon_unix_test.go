//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/platform/unix"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestDaemonEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	owner := startChild(t)

	watch, err := c.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the watch is in place
		t.Fatal(err)
	}

	res, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	l := res.GetLease()
	if l.GetOwnerPid() != int32(owner.Process.Pid) || l.GetOwnerStartTime() == nil || l.GetOwnerName() == "" {
		t.Errorf("lease = %v; want owner pid, start time and name", l)
	}
	eph, err := unix.New().EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	if l.GetPort() >= uint32(eph.First) || l.GetPort() < 1024 {
		t.Errorf("port %d not below the ephemeral start %d", l.GetPort(), eph.First)
	}
	// The port handed out binds.
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", l.GetPort()))
	if err != nil {
		t.Fatalf("leased port does not bind: %v", err)
	}
	ln.Close()

	ev, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetType() != brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED || ev.GetLease().GetId() != l.GetId() {
		t.Errorf("first event = %v, want acquired %s", ev, l.GetId())
	}

	list, err := listAll(ctx, c, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetLeases()) != 1 || !proto.Equal(list.GetLeases()[0], l) {
		t.Errorf("ListLeases = %v, want just %v", list.GetLeases(), l)
	}

	st, err := c.GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetLeaseCount() != 1 || st.GetPoolFree() != st.GetPoolSize()-1 || st.GetEphemeralRange().GetFirst() != uint32(eph.First) || st.GetVersion() != "test" {
		t.Errorf("status = %v", st)
	}

	if _, err := c.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: l.GetId()}); err != nil {
		t.Fatal(err)
	}
	ev, err = watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetType() != brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RELEASED {
		t.Errorf("second event = %v, want released", ev)
	}
	_, err = c.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: l.GetId()})
	if status.Code(err) != codes.NotFound {
		t.Errorf("second release: %v, want NotFound", err)
	}

	// Health and reflection answer, so grpcurl works.
	conn := dial(t, d.addr)
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "portbroker.v1.BrokerService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v", h, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), "portbroker.v1.BrokerService") {
		t.Errorf("reflection lists %v, want portbroker.v1.BrokerService", names)
	}
	rc.CloseSend()

	// A clean stop ends the watch stream and exits without error.
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("watch stream still open after the daemon stopped")
	}
	if _, err := os.Stat(strings.TrimPrefix(cfg.Addr, "unix://")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after stop: %v", err)
	}
}

func TestDaemonRestartKeepsLeasesAndReclaimsDeadOwners(t *testing.T) {
	cfg := testConfig(t)
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	alive, doomed := startChild(t), startChild(t)

	keep, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "keep", OwnerPid: int32(alive.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "doomed", OwnerPid: int32(doomed.Process.Pid)}); err != nil {
		t.Fatal(err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// The owner dies while the daemon is down.
	doomed.Process.Kill()
	doomed.Wait()

	d = startDaemon(t, cfg)
	c = brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	list, err := listAll(ctx, c, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetLeases()) != 1 || !proto.Equal(list.GetLeases()[0], keep.GetLease()) {
		t.Fatalf("after restart leases = %v, want only %v", list.GetLeases(), keep.GetLease())
	}
	// The name remembers its port across the restart.
	again, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "keep", OwnerPid: int32(alive.Process.Pid)})
	if err != nil || !again.GetExisting() || again.GetLease().GetId() != keep.GetLease().GetId() {
		t.Errorf("re-acquire after restart = %v, %v; want the same lease", again, err)
	}
}

func TestDaemonReclaimsExitedOwner(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	ctx := ctxT(t)
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	owner := startChild(t)
	watch, err := c.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the watch is in place
		t.Fatal(err)
	}
	res, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	owner.Process.Kill()
	owner.Wait()
	for {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("no reclaim event: %v", err)
		}
		if ev.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED {
			if ev.GetReason() != brokerpb.ReclaimReason_RECLAIM_REASON_OWNER_EXITED || ev.GetLease().GetId() != res.GetLease().GetId() {
				t.Errorf("reclaim event = %v", ev)
			}
			break
		}
	}
	list, err := listAll(ctx, c, &brokerpb.ListLeasesRequest{})
	if err != nil || len(list.GetLeases()) != 0 {
		t.Errorf("leases after owner exit = %v, %v", list.GetLeases(), err)
	}
}

func TestDaemonBadInput(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	ctx := ctxT(t)
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	me := int32(os.Getpid())
	if _, err := c.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "existing", OwnerPid: me}); err != nil {
		t.Fatal(err)
	}
	before, err := listAll(ctx, c, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		req   *brokerpb.AcquireLeaseRequest
		field string
	}{
		{"port 70000", &brokerpb.AcquireLeaseRequest{Name: "a", Port: 70000, OwnerPid: me}, "port"},
		{"negative pid", &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: -1}, "owner_pid"},
		{"nonexistent pid", &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: 1 << 30}, "owner_pid"},
		{"pid 1", &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: 1}, "owner_pid"},
		{"empty name", &brokerpb.AcquireLeaseRequest{Name: "", OwnerPid: me}, "name"},
		{"300-char name", &brokerpb.AcquireLeaseRequest{Name: strings.Repeat("n", 300), OwnerPid: me}, "name"},
		{"unknown protocol", &brokerpb.AcquireLeaseRequest{Name: "a", Protocol: 42, OwnerPid: me}, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AcquireLease(ctx, tt.req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tt.field+": ") {
				t.Errorf("err = %v, want InvalidArgument naming %q", err, tt.field)
			}
		})
	}
	after, err := listAll(ctx, c, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, after) {
		t.Errorf("bad input changed the leases:\nbefore %v\nafter  %v", before, after)
	}
}

func TestSecondDaemonIsRefused(t *testing.T) {
	cfg := testConfig(t)
	first := startDaemon(t, cfg)

	// Same state dir, other address: the store's lock refuses it, naming the first.
	other := cfg
	other.Addr = "unix://" + filepath.Join(t.TempDir(), "other.sock")
	err := Run(ctxT(t), other, testHost(), nil, nil)
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) || !strings.Contains(err.Error(), first.addr) {
		t.Errorf("second daemon on the same state dir: %v; want ErrAlreadyRunning naming pid %d at %s", err, os.Getpid(), first.addr)
	}

	// Same address, other state dir: the live socket refuses it.
	other = cfg
	other.StateDir = filepath.Join(t.TempDir(), "state")
	err = Run(ctxT(t), other, testHost(), nil, nil)
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second daemon on the same address: %v; want ErrAlreadyRunning", err)
	}
}

func TestCorruptStoreIsRefusedThenRecovered(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.StateDir, StoreFile)
	garbage := []byte(strings.Repeat("not a bolt file\n", 512))
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(ctxT(t), cfg, testHost(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--recover") {
		t.Fatalf("start on a corrupt store: %v; want an error naming %s and --recover", err, path)
	}
	if data, _ := os.ReadFile(path); string(data) != string(garbage) {
		t.Fatal("corrupt store was changed")
	}
	cfg.Recover = true
	startDaemon(t, cfg).stop()
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 {
		t.Fatalf("kept copies = %v, want one", matches)
	}
	if data, _ := os.ReadFile(matches[0]); string(data) != string(garbage) {
		t.Error("kept copy differs from the corrupt file")
	}
}

func TestStateDirWritableByOthersIsRefused(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg.StateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	err := Run(ctxT(t), cfg, testHost(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("start with a 0777 state dir: %v", err)
	}
}

// TestOwnerDefaultsToCaller checks that the unix socket's peer credentials
// make the caller the owner when the request names none.
func TestOwnerDefaultsToCaller(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	c := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	res, err := c.AcquireLease(ctxT(t), &brokerpb.AcquireLeaseRequest{Name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetLease().GetOwnerPid(); got != int32(os.Getpid()) {
		t.Errorf("owner = %d, want the caller %d", got, os.Getpid())
	}
}
