package client_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/portbroker/portbroker/client/clienttest"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

var (
	created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	started = created.Add(-time.Minute)
)

func newClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(t.Context(), client.WithAddr(addr))
	if err != nil {
		t.Fatalf("New(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var ignoreClient = cmpopts.IgnoreUnexported(client.Lease{})

func pbLease() *brokerpb.Lease {
	return &brokerpb.Lease{
		Id:                "l-1",
		Name:              "web",
		Namespace:         "ci",
		Port:              8000,
		Protocol:          brokerpb.Protocol_PROTOCOL_TCP_UDP,
		OwnerPid:          42,
		OwnerStartTime:    timestamppb.New(started),
		OwnerName:         "python",
		OwnerUser:         "1000",
		LauncherPid:       41,
		LauncherStartTime: timestamppb.New(started.Add(-time.Second)),
		CreatedAt:         timestamppb.New(created),
		ExpiresAt:         timestamppb.New(created.Add(time.Minute)),
		Ttl:               durationpb.New(time.Minute),
	}
}

func wantLease() *client.Lease {
	return &client.Lease{
		ID:                "l-1",
		Name:              "web",
		Namespace:         "ci",
		Port:              8000,
		Protocol:          client.TCPUDP,
		OwnerPID:          42,
		OwnerStartTime:    started,
		OwnerName:         "python",
		OwnerUser:         "1000",
		LauncherPID:       41,
		LauncherStartTime: started.Add(-time.Second),
		CreatedAt:         created,
		TTL:               time.Minute,
		ExpiresAt:         created.Add(time.Minute),
	}
}

func TestNewUnavailable(t *testing.T) {
	addr := clienttest.DeadAddr(t)
	_, err := client.New(t.Context(), client.WithAddr(addr))
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("New with no daemon: error = %v; want ErrUnavailable", err)
	}
	if msg := err.Error(); !strings.Contains(msg, addr) || !strings.Contains(msg, "dial") {
		t.Errorf("error = %q; want it to name %s and the reason", msg, addr)
	}
	if got := status.Code(err); got != codes.Unavailable {
		t.Errorf("status.Code = %v, want Unavailable", got)
	}
}

func TestNewInvalidOptions(t *testing.T) {
	tests := []struct {
		name  string
		opts  []client.Option
		field string
	}{
		{"non-loopback address", []client.Option{client.WithAddr("tcp://192.0.2.1:80")}, "addr"},
		{"relative socket", []client.Option{client.WithAddr("unix://x.sock")}, "addr"},
		{"zero dial timeout", []client.Option{client.WithAddr("unix:///x.sock"), client.WithDialTimeout(0)}, "dial_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(t.Context(), tt.opts...)
			var iae *client.InvalidArgumentError
			if !errors.As(err, &iae) || !errors.Is(err, client.ErrInvalidArgument) || iae.Field != tt.field {
				t.Errorf("New error = %v; want an InvalidArgumentError for %q", err, tt.field)
			}
		})
	}
}

func TestNewAddrFromEnv(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{})
	t.Setenv(client.EnvAddr, addr)
	c, err := client.New(t.Context())
	if err != nil {
		t.Fatalf("New with %s=%s: %v", client.EnvAddr, addr, err)
	}
	defer c.Close()
	if c.Addr() != addr {
		t.Errorf("Addr() = %q, want %q", c.Addr(), addr)
	}
}

func TestAcquire(t *testing.T) {
	reqs := make(chan *brokerpb.AcquireLeaseRequest, 1)
	released := make(chan string, 1)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{
		Acquire: func(req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
			reqs <- req
			return &brokerpb.AcquireLeaseResponse{Lease: pbLease(), Existing: true, FallbackReason: "8080 in use"}, nil
		},
		Release: func(req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
			released <- req.GetLeaseId()
			return &brokerpb.ReleaseLeaseResponse{}, nil
		},
	})
	c := newClient(t, addr)

	lease, err := c.Acquire(t.Context(), "web",
		client.WithPort(8080), client.WithNamespace("ci"), client.WithOwnerPID(42),
		client.WithLauncherPID(41), client.WithTTL(time.Minute), client.WithProtocol(client.TCPUDP),
		client.WithStrict(), client.WithReclaim())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	wantReq := &brokerpb.AcquireLeaseRequest{
		Name: "web", Namespace: "ci", Port: 8080, Protocol: brokerpb.Protocol_PROTOCOL_TCP_UDP,
		OwnerPid: 42, LauncherPid: 41, Ttl: durationpb.New(time.Minute), Strict: true, Reclaim: true,
	}
	if diff := cmp.Diff(wantReq, <-reqs, protocmp.Transform()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	want := wantLease()
	want.Existing = true
	want.FallbackReason = "8080 in use"
	if diff := cmp.Diff(want, lease, ignoreClient); diff != "" {
		t.Errorf("lease (-want +got):\n%s", diff)
	}

	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if id := <-released; id != "l-1" {
		t.Errorf("released %q, want l-1", id)
	}
}

func TestAcquireDefaults(t *testing.T) {
	reqs := make(chan *brokerpb.AcquireLeaseRequest, 1)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
		reqs <- req
		return &brokerpb.AcquireLeaseResponse{Lease: &brokerpb.Lease{Id: "l-2", Port: 9000}}, nil
	}})
	lease, err := newClient(t, addr).Acquire(t.Context(), "db", client.WithUDP())
	if err != nil {
		t.Fatal(err)
	}
	want := &brokerpb.AcquireLeaseRequest{Name: "db", Protocol: brokerpb.Protocol_PROTOCOL_UDP, OwnerPid: int32(os.Getpid())}
	if diff := cmp.Diff(want, <-reqs, protocmp.Transform()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	// Unset times stay zero rather than becoming 1970.
	if lease.Port != 9000 || !lease.ExpiresAt.IsZero() || !lease.CreatedAt.IsZero() || lease.TTL != 0 {
		t.Errorf("lease = %+v; want port 9000 and zero times", lease)
	}
}

func TestAcquireInvalidOptions(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
		t.Error("AcquireLease called despite an invalid option")
		return nil, status.Error(codes.Internal, "unexpected")
	}})
	c := newClient(t, addr)
	tests := []struct {
		opt   client.AcquireOption
		field string
	}{
		{client.WithPort(-1), "port"},
		{client.WithPort(65536), "port"},
		{client.WithOwnerPID(0), "owner_pid"},
		{client.WithOwnerPID(1 << 40), "owner_pid"},
		{client.WithLauncherPID(-3), "launcher_pid"},
		{client.WithTTL(0), "ttl"},
		{client.WithTTL(-time.Second), "ttl"},
		{client.WithProtocol(0), "protocol"},
		{client.WithProtocol(9), "protocol"},
	}
	for _, tt := range tests {
		_, err := c.Acquire(t.Context(), "web", tt.opt)
		var iae *client.InvalidArgumentError
		if !errors.As(err, &iae) || iae.Field != tt.field || !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("Acquire error = %v; want InvalidArgumentError for %q", err, tt.field)
		}
	}
	if _, err := c.Renew(t.Context(), "l-1", -time.Second); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Renew(negative ttl) error = %v; want ErrInvalidArgument", err)
	}
}

func TestRenew(t *testing.T) {
	reqs := make(chan *brokerpb.RenewLeaseRequest, 2)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Renew: func(req *brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error) {
		reqs <- req
		return &brokerpb.RenewLeaseResponse{Lease: pbLease()}, nil
	}})
	c := newClient(t, addr)
	tests := []struct {
		ttl  time.Duration
		want *brokerpb.RenewLeaseRequest
	}{
		{time.Minute, &brokerpb.RenewLeaseRequest{LeaseId: "l-1", Ttl: durationpb.New(time.Minute)}},
		{0, &brokerpb.RenewLeaseRequest{LeaseId: "l-1"}},
	}
	for _, tt := range tests {
		lease, err := c.Renew(t.Context(), "l-1", tt.ttl)
		if err != nil {
			t.Fatalf("Renew(%v): %v", tt.ttl, err)
		}
		if diff := cmp.Diff(tt.want, <-reqs, protocmp.Transform()); diff != "" {
			t.Errorf("Renew(%v) request (-want +got):\n%s", tt.ttl, diff)
		}
		if diff := cmp.Diff(wantLease(), lease, ignoreClient); diff != "" {
			t.Errorf("Renew(%v) lease (-want +got):\n%s", tt.ttl, diff)
		}
	}
}

func TestList(t *testing.T) {
	namespaces := make(chan string, 1)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{List: func(req *brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
		namespaces <- req.GetNamespace()
		second := pbLease()
		second.Id, second.Port = "l-2", 8001
		return &brokerpb.ListLeasesResponse{Leases: []*brokerpb.Lease{pbLease(), second}}, nil
	}})
	leases, err := newClient(t, addr).List(t.Context(), "ci")
	if err != nil {
		t.Fatal(err)
	}
	if ns := <-namespaces; ns != "ci" {
		t.Errorf("listed namespace %q, want ci", ns)
	}
	second := wantLease()
	second.ID, second.Port = "l-2", 8001
	if diff := cmp.Diff([]*client.Lease{wantLease(), second}, leases, ignoreClient); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}
}

func TestStatus(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Status: func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
		return &brokerpb.GetStatusResponse{
			Version:           "1.2.3",
			Platform:          "linux/amd64",
			Pool:              &brokerpb.PortRange{First: 10000, Last: 32767},
			EphemeralRange:    &brokerpb.PortRange{First: 32768, Last: 60999},
			ReservedRanges:    []*brokerpb.PortRange{{First: 20000, Last: 20010, Source: "ip_local_reserved_ports"}},
			PoolSize:          22757,
			PoolFree:          22756,
			LeaseCount:        1,
			LeasesByNamespace: map[string]uint32{"default": 1},
			StartedAt:         timestamppb.New(started),
			StatePath:         "/state/leases.db",
			Pid:               99,
		}, nil
	}})
	got, err := newClient(t, addr).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &client.Status{
		Version:           "1.2.3",
		Platform:          "linux/amd64",
		PID:               99,
		StartedAt:         started,
		StatePath:         "/state/leases.db",
		Pool:              client.PortRange{First: 10000, Last: 32767},
		PoolSize:          22757,
		PoolFree:          22756,
		EphemeralRange:    client.PortRange{First: 32768, Last: 60999},
		ReservedRanges:    []client.PortRange{{First: 20000, Last: 20010, Source: "ip_local_reserved_ports"}},
		LeaseCount:        1,
		LeasesByNamespace: map[string]int{"default": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestWatch(t *testing.T) {
	events := []*brokerpb.WatchLeasesResponse{
		{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED, Lease: pbLease(), Time: timestamppb.New(created)},
		{
			Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED, Lease: pbLease(),
			Reason: brokerpb.ReclaimReason_RECLAIM_REASON_OWNER_EXITED, Time: timestamppb.New(created.Add(time.Second)),
		},
	}
	reqs := make(chan *brokerpb.WatchLeasesRequest, 1)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Watch: func(req *brokerpb.WatchLeasesRequest, stream grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
		reqs <- req
		for _, ev := range events {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		return nil
	}})
	var got []client.Event
	for ev, err := range newClient(t, addr).Watch(t.Context(), "ci", client.WithExisting()) {
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		got = append(got, ev)
	}
	if diff := cmp.Diff(&brokerpb.WatchLeasesRequest{Namespace: "ci", IncludeExisting: true}, <-reqs, protocmp.Transform()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	want := []client.Event{
		{Type: client.EventAcquired, Lease: wantLease(), Time: created},
		{Type: client.EventReclaimed, Lease: wantLease(), Reason: client.ReasonOwnerExited, Time: created.Add(time.Second)},
	}
	if diff := cmp.Diff(want, got, ignoreClient); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestWatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		watch func(grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error
		want  error
	}{
		{"overflow", func(s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
			return s.Send(&brokerpb.WatchLeasesResponse{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW})
		}, client.ErrWatchOverflow},
		{"status", func(grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
			return status.Error(codes.PermissionDenied, "namespace ci belongs to uid 0")
		}, client.ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := clienttest.Serve(t, &clienttest.FakeBroker{Watch: func(_ *brokerpb.WatchLeasesRequest, s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
				return tt.watch(s)
			}})
			var errs []error
			for ev, err := range newClient(t, addr).Watch(t.Context(), "") {
				if err == nil {
					t.Errorf("unexpected event %+v", ev)
					continue
				}
				errs = append(errs, err)
			}
			if len(errs) != 1 || !errors.Is(errs[0], tt.want) {
				t.Errorf("errors = %v; want exactly one matching %v", errs, tt.want)
			}
		})
	}
}

func TestWatchBreakEndsStream(t *testing.T) {
	ended := make(chan error, 1)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Watch: func(_ *brokerpb.WatchLeasesRequest, s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
		if err := s.Send(&brokerpb.WatchLeasesResponse{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED, Lease: pbLease()}); err != nil {
			return err
		}
		<-s.Context().Done()
		ended <- s.Context().Err()
		return nil
	}})
	for _, err := range newClient(t, addr).Watch(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("server stream ended with %v; want it cancelled by the client", err)
	}
}

// kinds are every error kind a daemon status maps to.
var kinds = []error{
	client.ErrInvalidArgument, client.ErrNotFound, client.ErrPoolExhausted, client.ErrLeaseLimit,
	client.ErrUserLimit, client.ErrWatcherLimit, client.ErrWatchOverflow, client.ErrPortHeld,
	client.ErrNameTaken, client.ErrPermissionDenied, client.ErrConflict, client.ErrUnimplemented,
	client.ErrUnavailable, context.Canceled, context.DeadlineExceeded,
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		code    codes.Code
		msg     string
		want    error // nil: no kind
		wantMsg string
		check   func(t *testing.T, err error)
	}{
		{code: codes.InvalidArgument, msg: "port: must be from 1 to 65535", want: client.ErrInvalidArgument,
			check: func(t *testing.T, err error) {
				var e *client.InvalidArgumentError
				if !errors.As(err, &e) || e.Field != "port" || e.Rule != "must be from 1 to 65535" {
					t.Errorf("InvalidArgumentError = %+v; want field port and its rule", e)
				}
			}},
		{code: codes.InvalidArgument, msg: "request is malformed: missing name", want: client.ErrInvalidArgument,
			check: func(t *testing.T, err error) {
				var e *client.InvalidArgumentError
				if !errors.As(err, &e) || e.Field != "" || e.Rule != "request is malformed: missing name" {
					t.Errorf("InvalidArgumentError = %+v; want no field and the whole message", e)
				}
			}},
		{code: codes.NotFound, msg: "lease l-9: not found", want: client.ErrNotFound},
		{code: codes.ResourceExhausted, msg: "no free port in 10000-32767", want: client.ErrPoolExhausted},
		{code: codes.FailedPrecondition, msg: "port 8000 is held by pid 4242 (python3.12)", want: client.ErrPortHeld,
			check: func(t *testing.T, err error) {
				var e *client.PortHeldError
				if !errors.As(err, &e) || e.Port != 8000 || e.HolderPID != 4242 || e.HolderName != "python3.12" {
					t.Errorf("PortHeldError = %+v; want port 8000 held by 4242 python3.12", e)
				}
			}},
		{code: codes.FailedPrecondition, msg: "port 8000 is leased to default/web by pid 7", want: client.ErrPortHeld,
			check: func(t *testing.T, err error) {
				var e *client.PortHeldError
				if !errors.As(err, &e) || e.Port != 8000 || e.HolderPID != 7 || e.HolderName != "" {
					t.Errorf("PortHeldError = %+v; want port 8000 held by pid 7", e)
				}
			}},
		{code: codes.FailedPrecondition, msg: "port 80 does not bind: permission denied", want: client.ErrPortHeld,
			check: func(t *testing.T, err error) {
				var e *client.PortHeldError
				if !errors.As(err, &e) || e.Port != 80 || e.HolderPID != 0 {
					t.Errorf("PortHeldError = %+v; want port 80 with no holder", e)
				}
			}},
		{code: codes.AlreadyExists, msg: "default/web is leased by pid 7", want: client.ErrNameTaken},
		{code: codes.PermissionDenied, msg: "lease belongs to uid 0", want: client.ErrPermissionDenied},
		{code: codes.Aborted, msg: "lease is being changed", want: client.ErrConflict},
		{code: codes.Unimplemented, msg: "firewall rules need Windows", want: client.ErrUnimplemented},
		{code: codes.Unavailable, msg: "shutting down", want: client.ErrUnavailable, wantMsg: "unavailable: shutting down"},
		{code: codes.Canceled, msg: "cancelled", want: context.Canceled},
		{code: codes.DeadlineExceeded, msg: "too slow", want: context.DeadlineExceeded},
		{code: codes.Internal, msg: "disk on fire", wantMsg: "portbrokerd: Internal: disk on fire"},
		{code: codes.Unknown, msg: "odd", wantMsg: "portbrokerd: Unknown: odd"},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			addr := clienttest.Serve(t, &clienttest.FakeBroker{Release: func(*brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
				return nil, status.Error(tt.code, tt.msg)
			}})
			c := newClient(t, addr)
			typed := c.Release(t.Context(), "l-9")
			_, raw := c.RPC().ReleaseLease(t.Context(), &brokerpb.ReleaseLeaseRequest{LeaseId: "l-9"})
			for name, err := range map[string]error{"Release": typed, "RPC().ReleaseLease": raw} {
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				for _, kind := range kinds {
					if got, want := errors.Is(err, kind), kind == tt.want; got != want {
						t.Errorf("%s: errors.Is(%q, %v) = %v, want %v", name, err, kind, got, want)
					}
				}
				if got := status.Code(err); got != tt.code {
					t.Errorf("%s: status.Code = %v, want %v", name, got, tt.code)
				}
				wantMsg := tt.wantMsg
				if wantMsg == "" {
					wantMsg = tt.msg
				}
				if !strings.Contains(err.Error(), wantMsg) {
					t.Errorf("%s: error %q does not contain %q", name, err, wantMsg)
				}
				if tt.check != nil {
					tt.check(t, err)
				}
			}
		})
	}
}

func TestDaemonGoneIsUnavailable(t *testing.T) {
	addr, stop := clienttest.ServeUntil(t, &clienttest.FakeBroker{})
	c := newClient(t, addr)
	stop()
	err := c.Release(t.Context(), "l-1")
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Release after the daemon stopped: error = %v; want ErrUnavailable naming %s", err, addr)
	}
}

// Listen binds the leased port; when another process took it first, it
// gives that lease back and tries once more with a fresh one.
func TestListenLostBindRace(t *testing.T) {
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	spare, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := spare.Addr().(*net.TCPAddr).Port
	spare.Close()

	tests := []struct {
		name     string
		ports    []int // granted by the first and second acquire
		wantPort int   // 0: Listen fails
		released []string
	}{
		{name: "second lease binds", ports: []int{heldPort, freePort}, wantPort: freePort, released: []string{"l-1"}},
		{name: "both taken", ports: []int{heldPort, heldPort}, released: []string{"l-1", "l-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var acquired int
			var released []string
			addr := clienttest.Serve(t, &clienttest.FakeBroker{
				Acquire: func(req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
					mu.Lock()
					defer mu.Unlock()
					port := tt.ports[acquired]
					acquired++
					return &brokerpb.AcquireLeaseResponse{Lease: &brokerpb.Lease{
						Id: fmt.Sprintf("l-%d", acquired), Name: req.GetName(), Port: uint32(port), Protocol: brokerpb.Protocol_PROTOCOL_TCP,
					}}, nil
				},
				Release: func(req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
					mu.Lock()
					defer mu.Unlock()
					released = append(released, req.GetLeaseId())
					return &brokerpb.ReleaseLeaseResponse{}, nil
				},
			})
			ln, err := newClient(t, addr).Listen(t.Context(), "web")
			if tt.wantPort == 0 {
				if err == nil {
					ln.Close()
					t.Fatal("Listen succeeded on a taken port")
				}
			} else {
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				if got := ln.Addr().(*net.TCPAddr).Port; got != tt.wantPort {
					t.Errorf("listening on %d, want %d", got, tt.wantPort)
				}
				ln.Close()
				tt.released = append(tt.released, "l-2") // by Close
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(tt.released, released); diff != "" {
				t.Errorf("released (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloseStopsKeepalive(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
		return &brokerpb.AcquireLeaseResponse{Lease: pbLease()}, nil // a 1m TTL
	}})
	c, err := client.New(t.Context(), client.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := c.Acquire(t.Context(), "web", client.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Err(); err != nil {
		t.Fatalf("Err before Close = %v", err)
	}
	c.Close()
	select {
	case <-lease.Done():
	default:
		t.Fatal("Done open after Close returned")
	}
	if !errors.Is(lease.Err(), client.ErrClientClosed) {
		t.Errorf("Err = %v, want ErrClientClosed", lease.Err())
	}
}

// withInfo is a daemon status carrying an ErrorInfo and any further details.
func withInfo(t *testing.T, code codes.Code, msg, reason string, meta map[string]string, more ...protoadapt.MessageV1) error {
	t.Helper()
	st, err := status.New(code, msg).WithDetails(append([]protoadapt.MessageV1{
		&errdetails.ErrorInfo{Reason: reason, Domain: "portbroker.dev", Metadata: meta}}, more...)...)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// The client reads the structured details, not the message: each status
// below has a message that says nothing (or says something else), so only
// the details can give the kind, field or holder.
func TestErrorMappingFromDetails(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		want  error
		check func(t *testing.T, err error)
	}{
		{"pool", withInfo(t, codes.ResourceExhausted, "no", "POOL_EXHAUSTED", nil), client.ErrPoolExhausted, nil},
		{"lease limit", withInfo(t, codes.ResourceExhausted, "no", "LEASE_LIMIT", nil), client.ErrLeaseLimit, nil},
		{"user limit", withInfo(t, codes.ResourceExhausted, "no", "USER_LIMIT", nil), client.ErrUserLimit, nil},
		{"watcher limit", withInfo(t, codes.ResourceExhausted, "no", "WATCHER_LIMIT", nil), client.ErrWatcherLimit, nil},
		{"watch overflow", withInfo(t, codes.ResourceExhausted, "no", "WATCH_OVERFLOW", nil), client.ErrWatchOverflow, nil},
		{"kill refused", withInfo(t, codes.PermissionDenied, "no", "KILL_REFUSED", map[string]string{"pid": "1"}), client.ErrPermissionDenied,
			func(t *testing.T, err error) {
				if reason, meta := client.ErrorReason(err); reason != "KILL_REFUSED" || meta["pid"] != "1" {
					t.Errorf("ErrorReason = %q %v; want KILL_REFUSED with pid 1", reason, meta)
				}
			}},
		{"unknown reason keeps the code's kind", withInfo(t, codes.NotFound, "no", "SOMETHING_NEW", nil), client.ErrNotFound, nil},
		{"foreign domain is ignored", func() error {
			st, _ := status.New(codes.ResourceExhausted, "quota").WithDetails(&errdetails.ErrorInfo{Reason: "USER_LIMIT", Domain: "example.com"})
			return st.Err()
		}(), client.ErrPoolExhausted, nil},
		{"bad request", func() error {
			st, _ := status.New(codes.InvalidArgument, "request: bad").WithDetails(&errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "launcher_pid", Description: "must not be 1"}}})
			return st.Err()
		}(), client.ErrInvalidArgument, func(t *testing.T, err error) {
			var e *client.InvalidArgumentError
			if !errors.As(err, &e) || e.Field != "launcher_pid" || e.Rule != "must not be 1" {
				t.Errorf("InvalidArgumentError = %+v; want launcher_pid from the BadRequest", e)
			}
			if len(status.Convert(err).Details()) != 1 {
				t.Errorf("status lost its details: %v", status.Convert(err).Details())
			}
		}},
		{"port held", withInfo(t, codes.FailedPrecondition, "port 1 is held by pid 2 (x)", "PORT_HELD",
			map[string]string{"port": "8000", "holder_pid": "4242", "holder_name": "python3", "lease_id": "l-1", "lease_name": "web"}),
			client.ErrPortHeld, func(t *testing.T, err error) {
				var e *client.PortHeldError
				want := client.PortHeldError{Port: 8000, HolderPID: 4242, HolderName: "python3", LeaseID: "l-1", LeaseName: "web"}
				if !errors.As(err, &e) || e.Port != want.Port || e.HolderPID != want.HolderPID || e.HolderName != want.HolderName ||
					e.LeaseID != want.LeaseID || e.LeaseName != want.LeaseName {
					t.Errorf("PortHeldError = %+v; want %+v from the ErrorInfo, not the message", e, want)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := clienttest.Serve(t, &clienttest.FakeBroker{Release: func(*brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
				return nil, tt.err
			}})
			err := newClient(t, addr).Release(t.Context(), "l-9")
			for _, kind := range kinds {
				if got, want := errors.Is(err, kind), kind == tt.want; got != want {
					t.Errorf("errors.Is(%q, %v) = %v, want %v", err, kind, got, want)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}
