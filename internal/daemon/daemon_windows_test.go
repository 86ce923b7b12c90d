package daemon

import (
	"fmt"
	"net"
	"os"
	"testing"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestDaemonServesOverTCP runs the whole server and client path on the
// Windows backend: it runs under Wine in CI.
func TestDaemonServesOverTCP(t *testing.T) {
	cfg := testConfig(t)
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	conn := dial(t, d.addr)
	rpc := brokerpb.NewBrokerServiceClient(conn)

	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}
	// Over loopback TCP the owner-PID connection table names the caller,
	// so owner_pid 0 is this process, as over a pipe.
	anon, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "anon"})
	if err != nil {
		t.Fatalf("acquire without owner_pid over TCP: %v; want the caller named by the connection table", err)
	}
	if got := anon.GetLease().GetOwnerPid(); got != int32(os.Getpid()) {
		t.Errorf("acquire without owner_pid over TCP: owner %d, want this process %d", got, os.Getpid())
	}
	owner := startChild(t)
	watch, err := rpc.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the watch is in place
		t.Fatal(err)
	}
	res, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	l := res.GetLease()
	st, err := rpc.GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if l.GetPort() >= st.GetEphemeralRange().GetFirst() || l.GetOwnerStartTime() == nil || l.GetOwnerName() == "" {
		t.Errorf("lease = %v, ephemeral range %v; want a port below it with the owner's start time and name", l, st.GetEphemeralRange())
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", l.GetPort()))
	if err != nil {
		t.Fatalf("leased port does not bind: %v", err)
	}
	ln.Close()

	rep, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{Port: l.GetPort()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetLease().GetId() != l.GetId() {
		t.Errorf("InspectPort lease = %v, want %s", rep.GetLease(), l.GetId())
	}
	if _, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: 70000}); status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.Unimplemented {
		t.Errorf("OpenFirewall(70000) = %v", err)
	}

	// The owner dies: the Windows exit watcher reclaims the lease.
	owner.Process.Kill()
	owner.Wait()
	for {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("no reclaim event: %v", err)
		}
		if ev.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED {
			if ev.GetReason() != brokerpb.ReclaimReason_RECLAIM_REASON_OWNER_EXITED || ev.GetLease().GetId() != l.GetId() {
				t.Errorf("reclaim event = %v", ev)
			}
			break
		}
	}
	if err := d.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
