package client_test

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// fakeBroker answers each RPC with the function set for it, or
// Unimplemented when none is.
type fakeBroker struct {
	brokerpb.UnimplementedBrokerServiceServer
	acquire func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error)
	release func(*brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error)
	renew   func(*brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error)
	list    func(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error)
	status  func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error)
	watch   func(*brokerpb.WatchLeasesRequest, grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error
}

func (f *fakeBroker) AcquireLease(ctx context.Context, req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
	if f.acquire == nil {
		return f.UnimplementedBrokerServiceServer.AcquireLease(ctx, req)
	}
	return f.acquire(req)
}

func (f *fakeBroker) ReleaseLease(ctx context.Context, req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
	if f.release == nil {
		return f.UnimplementedBrokerServiceServer.ReleaseLease(ctx, req)
	}
	return f.release(req)
}

func (f *fakeBroker) RenewLease(ctx context.Context, req *brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error) {
	if f.renew == nil {
		return f.UnimplementedBrokerServiceServer.RenewLease(ctx, req)
	}
	return f.renew(req)
}

func (f *fakeBroker) ListLeases(ctx context.Context, req *brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
	if f.list == nil {
		return f.UnimplementedBrokerServiceServer.ListLeases(ctx, req)
	}
	return f.list(req)
}

func (f *fakeBroker) GetStatus(ctx context.Context, req *brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
	if f.status == nil {
		return f.UnimplementedBrokerServiceServer.GetStatus(ctx, req)
	}
	return f.status(req)
}

func (f *fakeBroker) WatchLeases(req *brokerpb.WatchLeasesRequest, stream grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
	if f.watch == nil {
		return f.UnimplementedBrokerServiceServer.WatchLeases(req, stream)
	}
	return f.watch(req, stream)
}

// serve runs srv until the test ends and returns its address.
func serve(t *testing.T, srv brokerpb.BrokerServiceServer) string {
	t.Helper()
	addr, _ := serveUntil(t, srv)
	return addr
}

// serveUntil runs srv until stop is called or the test ends: on a unix
// socket in a temporary directory, or on loopback TCP on Windows, where
// the tests also run under Wine (which has no AF_UNIX).
func serveUntil(t *testing.T, srv brokerpb.BrokerServiceServer) (addr string, stop func()) {
	t.Helper()
	addr = "tcp://127.0.0.1:0"
	if runtime.GOOS != "windows" {
		addr = "unix://" + filepath.Join(t.TempDir(), "broker.sock")
	}
	ln, err := ipc.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "windows" {
		addr = "tcp://" + ln.Addr().String()
	}
	s := grpc.NewServer()
	brokerpb.RegisterBrokerServiceServer(s, srv)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.Stop()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return addr, stop
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	if runtime.GOOS != "windows" {
		return "unix://" + filepath.Join(t.TempDir(), "none.sock")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "tcp://" + ln.Addr().String()
}
