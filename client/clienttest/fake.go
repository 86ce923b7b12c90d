package clienttest

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

// FakeBroker answers each RPC with the function set for it, or
// Unimplemented when none is, for tests of what clients do with answers a
// real daemon would rarely give.
type FakeBroker struct {
	brokerpb.UnimplementedBrokerServiceServer
	Acquire func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error)
	Release func(*brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error)
	Renew   func(*brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error)
	List    func(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error)
	Status  func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error)
	Watch   func(*brokerpb.WatchLeasesRequest, grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error
	Inspect func(*brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error)
	Reclaim func(*brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error)
}

func (f *FakeBroker) AcquireLease(ctx context.Context, req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
	if f.Acquire == nil {
		return f.UnimplementedBrokerServiceServer.AcquireLease(ctx, req)
	}
	return f.Acquire(req)
}

func (f *FakeBroker) ReleaseLease(ctx context.Context, req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
	if f.Release == nil {
		return f.UnimplementedBrokerServiceServer.ReleaseLease(ctx, req)
	}
	return f.Release(req)
}

func (f *FakeBroker) RenewLease(ctx context.Context, req *brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error) {
	if f.Renew == nil {
		return f.UnimplementedBrokerServiceServer.RenewLease(ctx, req)
	}
	return f.Renew(req)
}

func (f *FakeBroker) ListLeases(ctx context.Context, req *brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
	if f.List == nil {
		return f.UnimplementedBrokerServiceServer.ListLeases(ctx, req)
	}
	return f.List(req)
}

func (f *FakeBroker) GetStatus(ctx context.Context, req *brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
	if f.Status == nil {
		return f.UnimplementedBrokerServiceServer.GetStatus(ctx, req)
	}
	return f.Status(req)
}

func (f *FakeBroker) WatchLeases(req *brokerpb.WatchLeasesRequest, stream grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
	if f.Watch == nil {
		return f.UnimplementedBrokerServiceServer.WatchLeases(req, stream)
	}
	return f.Watch(req, stream)
}

func (f *FakeBroker) InspectPort(ctx context.Context, req *brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error) {
	if f.Inspect == nil {
		return f.UnimplementedBrokerServiceServer.InspectPort(ctx, req)
	}
	return f.Inspect(req)
}

func (f *FakeBroker) ReclaimPort(ctx context.Context, req *brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error) {
	if f.Reclaim == nil {
		return f.UnimplementedBrokerServiceServer.ReclaimPort(ctx, req)
	}
	return f.Reclaim(req)
}

// Serve runs srv until the test ends and returns its address.
func Serve(t testing.TB, srv brokerpb.BrokerServiceServer) string {
	t.Helper()
	addr, _ := ServeUntil(t, srv)
	return addr
}

// ServeUntil runs srv until stop is called or the test ends: on a unix
// socket in a temporary directory, or on loopback TCP on Windows, where
// the tests also run under Wine (which has no AF_UNIX).
func ServeUntil(t testing.TB, srv brokerpb.BrokerServiceServer) (addr string, stop func()) {
	t.Helper()
	addr = "tcp://127.0.0.1:0"
	if runtime.GOOS != "windows" {
		addr = "unix://" + filepath.Join(t.TempDir(), "broker.sock")
	}
	ln, err := ipc.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if runtime.GOOS == "windows" {
		addr = "tcp://" + ln.Addr().String()
		// Over TCP clients talk only to the daemon whose certificate they pin.
		cert, path, err := ipc.NewDaemonCert(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(ipc.EnvCertFile, path)
		opts = append(opts, grpc.Creds(ipc.ServerCredentials(ipc.WithTLS(cert))))
	}
	s := grpc.NewServer(opts...)
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

// DeadAddr returns an address nothing listens on.
func DeadAddr(t testing.TB) string {
	t.Helper()
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
