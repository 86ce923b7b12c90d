package rpcserver

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// memStore keeps leases in memory.
type memStore struct {
	mu     sync.Mutex
	leases map[string]broker.Lease
}

func (s *memStore) Load(context.Context) (broker.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return broker.State{Leases: slices.Collect(maps.Values(s.leases))}, nil
}

func (s *memStore) Put(_ context.Context, l broker.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leases[l.ID] = l
	return nil
}

func (s *memStore) Delete(_ context.Context, ids ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.leases, id)
	}
	return nil
}

// anyProcess says every PID runs, started at one fixed time.
type anyProcess struct{}

var started = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (anyProcess) Lookup(pid int) (broker.Process, error) {
	return broker.Process{PID: pid, StartTime: started, User: "1000"}, nil
}

type freePorts struct{}

func (freePorts) Probe(uint16, broker.Protocol) error { return nil }

// serve runs a Server over b on an in-memory listener and returns a
// client of it.
func serve(t *testing.T, b *broker.Broker) brokerpb.BrokerServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	srv := New(b, Info{}, nil)
	srv.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown()
		gs.Stop()
		<-done
	})
	return brokerpb.NewBrokerServiceClient(conn)
}

// TestWatcherSlotHeldUntilHandlerReturns: a stream that does not read
// overflows, yet its handler, blocked sending, still holds its slot of
// limits.watchers; the slot frees once the stream ends.
func TestWatcherSlotHeldUntilHandlerReturns(t *testing.T) {
	b, err := broker.Open(t.Context(), broker.Config{
		Pool:   broker.PoolConfig{Range: broker.PortRange{First: 10000, Last: 19999}, Ephemeral: broker.PortRange{First: 32768, Last: 60999}},
		Limits: broker.Limits{Watchers: 1},
	}, broker.Deps{Store: &memStore{leases: map[string]broker.Lease{}}, Processes: anyProcess{}, Prober: freePorts{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rpc := serve(t, b)
	ctx := t.Context()
	for i := range 3000 {
		if _, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("%0100d", i), OwnerPid: 4242}); err != nil {
			t.Fatal(err)
		}
	}
	stuckCtx, cancelStuck := context.WithCancel(ctx)
	defer cancelStuck()
	stuck, err := rpc.WatchLeases(stuckCtx, &brokerpb.WatchLeasesRequest{IncludeExisting: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stuck.Recv(); err != nil { // the stream is up; then it reads no more
		t.Fatal(err)
	}
	// Churn well past what the stream buffers, so it overflows.
	for i := range 1500 {
		resp, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprint("churn", i), OwnerPid: 4243})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: resp.GetLease().GetId()}); err != nil {
			t.Fatal(err)
		}
	}
	second, err := rpc.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err == nil {
		_, err = second.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second watcher while the first handler is blocked: %v; want ResourceExhausted", err)
	}
	cancelStuck()
	deadline := time.Now().Add(30 * time.Second)
	for {
		wctx, cancel := context.WithCancel(ctx)
		// With include_existing an event is due at once, so Recv answers
		// either with it (admitted) or with the refusal.
		w, err := rpc.WatchLeases(wctx, &brokerpb.WatchLeasesRequest{IncludeExisting: true})
		if err == nil {
			_, err = w.Recv()
		}
		cancel()
		if err == nil {
			return
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("watch after the first stream ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchHeaderMeansLive: once a WatchLeases stream's response headers
// arrive, the watch is in place, so a lease taken right after shows on
// it. Without the headers' promise, the acquire can overtake the
// stream's registration and its event is never sent.
func TestWatchHeaderMeansLive(t *testing.T) {
	b, err := broker.Open(t.Context(), broker.Config{
		Pool: broker.PoolConfig{Range: broker.PortRange{First: 10000, Last: 19999}, Ephemeral: broker.PortRange{First: 32768, Last: 60999}},
	}, broker.Deps{Store: &memStore{leases: map[string]broker.Lease{}}, Processes: anyProcess{}, Prober: freePorts{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rpc := serve(t, b)
	for i := range 200 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		w, err := rpc.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Header(); err != nil {
			t.Fatal(err)
		}
		res, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprint("live-", i), OwnerPid: 4242})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := w.Recv()
		if err != nil {
			t.Fatalf("round %d: no event for the lease taken after the headers: %v", i, err)
		}
		if ev.GetLease().GetId() != res.GetLease().GetId() {
			t.Fatalf("round %d: event for %s, want %s", i, ev.GetLease().GetId(), res.GetLease().GetId())
		}
		cancel()
	}
}
