//go:build unix

package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/platform/unix"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func init() { childModes["daemon"] = runDaemonChild }

// runDaemonChild is the test binary's daemon mode, so the crash test can
// SIGKILL a real daemon process.
func runDaemonChild() {
	cfg := Config{Addr: os.Getenv("PORTBROKER_TEST_ADDR"), StateDir: os.Getenv("PORTBROKER_TEST_STATE"), PollInterval: time.Second, SocketGroup: os.Getenv("PORTBROKER_TEST_GROUP")}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Run(ctx, cfg, unix.New(), nil, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestLoadInvariants hammers one daemon with 32 clients, then checks that
// no port is held twice, no acknowledged lease is lost and the pool agrees
// with the lease table.
func TestLoadInvariants(t *testing.T) {
	cfg := testConfig(t)
	d, err := New(context.Background(), cfg, unix.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})

	const clients = 32
	deadline := time.Now().Add(3 * time.Second)
	me := int32(os.Getpid())
	held := make([]map[string]*brokerpb.Lease, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		held[c] = map[string]*brokerpb.Lease{}
		wg.Go(func() {
			rpc := brokerpb.NewBrokerServiceClient(dial(t, cfg.Addr))
			ns := fmt.Sprintf("client-%d", c)
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for i := 0; time.Now().Before(deadline); i++ {
				if err := loadStep(ctx, rpc, rng, ns, i, me, held[c]); err != nil {
					errs <- fmt.Errorf("client %d step %d: %w", c, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	want := map[string]*brokerpb.Lease{}
	for _, h := range held {
		for id, l := range h {
			want[id] = l
		}
	}
	rpc := brokerpb.NewBrokerServiceClient(dial(t, cfg.Addr))
	list, err := listAll(ctx, rpc, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ports := map[uint32]string{}
	for _, l := range list.GetLeases() {
		if other, ok := ports[l.GetPort()]; ok {
			t.Errorf("port %d held by %s and %s", l.GetPort(), other, l.GetId())
		}
		ports[l.GetPort()] = l.GetId()
		w, ok := want[l.GetId()]
		if !ok {
			t.Errorf("lease %s listed but not held by any client", l.GetId())
			continue
		}
		if w.GetPort() != l.GetPort() || w.GetName() != l.GetName() {
			t.Errorf("lease %s changed: acquired %v, listed %v", l.GetId(), w, l)
		}
		delete(want, l.GetId())
	}
	for id := range want {
		t.Errorf("acknowledged lease %s lost", id)
	}
	if err := d.Broker().Check(); err != nil {
		t.Errorf("broker invariants after load: %v", err)
	}
	t.Logf("%d leases held at the end by %d clients", len(list.GetLeases()), clients)
}

// loadStep does one random operation and keeps held in step with what the
// daemon acknowledged.
func loadStep(ctx context.Context, rpc brokerpb.BrokerServiceClient, rng *rand.Rand, ns string, i int, owner int32, held map[string]*brokerpb.Lease) error {
	switch op := rng.IntN(10); {
	case op < 4 || len(held) == 0:
		req := &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("svc-%d", i), Namespace: ns, OwnerPid: owner}
		if rng.IntN(2) == 0 {
			req.Ttl = durationpb.New(time.Minute)
		}
		res, err := rpc.AcquireLease(ctx, req)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		held[res.GetLease().GetId()] = res.GetLease()
	case op < 6:
		list, err := listAll(ctx, rpc, &brokerpb.ListLeasesRequest{Namespace: ns})
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if len(list.GetLeases()) != len(held) {
			return fmt.Errorf("list of %s has %d leases, the client holds %d", ns, len(list.GetLeases()), len(held))
		}
	case op < 8:
		for id, l := range held {
			if l.GetTtl() == nil {
				continue
			}
			res, err := rpc.RenewLease(ctx, &brokerpb.RenewLeaseRequest{LeaseId: id})
			if err != nil {
				return fmt.Errorf("renew %s: %w", id, err)
			}
			held[id] = res.GetLease()
			break
		}
	default:
		for id := range held {
			if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: id}); err != nil {
				return fmt.Errorf("release %s: %w", id, err)
			}
			delete(held, id)
			break
		}
	}
	return nil
}

// TestCrashKeepsAcknowledgedLeases kills a daemon process with SIGKILL
// under load, restarts it on the same state dir, and checks that every
// lease whose acquire was acknowledged is there. It repeats a few times.
func TestCrashKeepsAcknowledgedLeases(t *testing.T) {
	cfg := testConfig(t)
	me := int32(os.Getpid())
	acked := map[string]*brokerpb.Lease{} // acquired and not released, as acknowledged
	for round := range 4 {
		daemon := startDaemonProcess(t, cfg)
		conn := dial(t, cfg.Addr)
		rpc := brokerpb.NewBrokerServiceClient(conn)
		ctx := ctxT(t)

		list, err := listAll(ctx, rpc, &brokerpb.ListLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]*brokerpb.Lease{}
		for _, l := range list.GetLeases() {
			listed[l.GetId()] = l
		}
		for id, l := range acked {
			got, ok := listed[id]
			if !ok {
				t.Fatalf("round %d: acknowledged lease %s (%s port %d) lost in the crash", round, id, l.GetName(), l.GetPort())
			}
			if got.GetPort() != l.GetPort() {
				t.Errorf("round %d: lease %s moved from port %d to %d", round, id, l.GetPort(), got.GetPort())
			}
		}
		// Leases whose acquire was in flight at the kill may or may not have
		// landed; from here on they count as acknowledged.
		acked = listed

		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := range 16 {
			wg.Go(func() {
				rpc := brokerpb.NewBrokerServiceClient(dial(t, cfg.Addr))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					res, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{
						Name: fmt.Sprintf("r%d-c%d-%d", round, c, i), OwnerPid: me,
					})
					if err != nil {
						return // the daemon died under us
					}
					mu.Lock()
					acked[res.GetLease().GetId()] = res.GetLease()
					var victim string
					if i%3 == 2 {
						for id := range acked {
							victim = id
							// In flight: it may survive the crash or not.
							delete(acked, id)
							break
						}
					}
					mu.Unlock()
					if victim != "" {
						if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: victim}); err != nil {
							return
						}
					}
				}
			})
		}
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
		daemon.Process.Signal(syscall.SIGKILL)
		daemon.Wait()
		close(stop)
		wg.Wait()
		conn.Close()
		t.Logf("round %d: %d leases acknowledged when the daemon was killed", round, len(acked))
	}
	// A final start must open the store and hold every acknowledged lease.
	daemon := startDaemonProcess(t, cfg)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, cfg.Addr))
	list, err := listAll(ctxT(t), rpc, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range list.GetLeases() {
		have[l.GetId()] = true
	}
	for id := range acked {
		if !have[id] {
			t.Errorf("acknowledged lease %s lost", id)
		}
	}
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Errorf("daemon did not stop cleanly on SIGTERM: %v", err)
	}
}

// startDaemonProcess runs the test binary as a daemon and waits until it
// answers health checks.
func startDaemonProcess(t *testing.T, cfg Config) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=daemon", "PORTBROKER_TEST_ADDR="+cfg.Addr, "PORTBROKER_TEST_STATE="+cfg.StateDir, "PORTBROKER_TEST_GROUP="+cfg.SocketGroup)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	conn := dial(t, cfg.Addr)
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		res, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not healthy after 30s: %v; stderr: %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInputEveryRPC sends each RPC input it must refuse, and checks the
// code, that the message names the field, and that nothing changed.
func TestBadInputEveryRPC(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	me := int32(os.Getpid())
	l, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "keep", OwnerPid: me})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() []proto.Message {
		list, err := listAll(ctx, rpc, &brokerpb.ListLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := rpc.GetStatus(ctx, &brokerpb.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return []proto.Message{list, &brokerpb.GetStatusResponse{PoolFree: st.GetPoolFree(), LeaseCount: st.GetLeaseCount()}}
	}
	before := snapshot()
	long := strings.Repeat("x", 129)
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"acquire port 70000", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", Port: 70000, OwnerPid: me})
			return err
		}, codes.InvalidArgument, "port"},
		{"acquire negative pid", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: -7})
			return err
		}, codes.InvalidArgument, "owner_pid"},
		{"acquire pid 1", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: 1})
			return err
		}, codes.InvalidArgument, "owner_pid"},
		{"acquire unknown launcher", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: me, LauncherPid: 1 << 30})
			return err
		}, codes.InvalidArgument, "launcher_pid"},
		{"acquire 129-byte name", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: long, OwnerPid: me})
			return err
		}, codes.InvalidArgument, "name"},
		{"acquire 129-byte namespace", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", Namespace: long, OwnerPid: me})
			return err
		}, codes.InvalidArgument, "namespace"},
		{"acquire unknown protocol", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", Protocol: 9, OwnerPid: me})
			return err
		}, codes.InvalidArgument, "protocol"},
		{"acquire negative ttl", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "a", OwnerPid: me, Ttl: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "ttl"},
		{"acquire a name another owner holds", func() error {
			_, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "keep", OwnerPid: int32(os.Getppid())})
			return err
		}, codes.AlreadyExists, ""},
		{"release empty id", func() error {
			_, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{})
			return err
		}, codes.InvalidArgument, "lease_id"},
		{"release unknown id", func() error {
			_, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: "nope"})
			return err
		}, codes.NotFound, ""},
		{"renew unknown id", func() error {
			_, err := rpc.RenewLease(ctx, &brokerpb.RenewLeaseRequest{LeaseId: "nope"})
			return err
		}, codes.NotFound, ""},
		{"renew negative ttl", func() error {
			_, err := rpc.RenewLease(ctx, &brokerpb.RenewLeaseRequest{LeaseId: l.GetLease().GetId(), Ttl: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "ttl"},
		{"renew a lease without ttl", func() error {
			_, err := rpc.RenewLease(ctx, &brokerpb.RenewLeaseRequest{LeaseId: l.GetLease().GetId()})
			return err
		}, codes.InvalidArgument, "ttl"},
		{"list 129-byte namespace", func() error {
			_, err := rpc.ListLeases(ctx, &brokerpb.ListLeasesRequest{Namespace: long})
			return err
		}, codes.InvalidArgument, "namespace"},
		{"watch 129-byte namespace", func() error {
			s, err := rpc.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{Namespace: long})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "namespace"},
		{"inspect port 0", func() error {
			_, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{})
			return err
		}, codes.InvalidArgument, "port"},
		{"inspect unknown protocol", func() error {
			_, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{Port: 8000, Protocol: 7})
			return err
		}, codes.InvalidArgument, "protocol"},
		{"reclaim port 70000", func() error {
			_, err := rpc.ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: 70000})
			return err
		}, codes.InvalidArgument, "port"},
		{"reclaim negative grace", func() error {
			_, err := rpc.ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: 8000, Grace: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "grace"},
		{"firewall open on unix", func() error {
			_, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: 8000})
			return err
		}, codes.Unimplemented, ""},
		{"firewall list on unix", func() error {
			_, err := rpc.ListFirewallRules(ctx, &brokerpb.ListFirewallRulesRequest{})
			return err
		}, codes.Unimplemented, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(tt.call())
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%s), want %v", st.Code(), st.Message(), tt.code)
			}
			if tt.field != "" && !strings.HasPrefix(st.Message(), tt.field+": ") {
				t.Errorf("message %q does not name the field %q first", st.Message(), tt.field)
			}
			if st.Message() == "" {
				t.Error("empty message")
			}
		})
	}
	after := snapshot()
	for i := range before {
		if !proto.Equal(before[i], after[i]) {
			t.Errorf("refused calls changed the daemon:\nbefore %v\nafter  %v", before[i], after[i])
		}
	}
}
