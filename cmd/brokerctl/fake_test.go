package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

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
	list    func(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error)
	status  func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error)
	watch   func(*brokerpb.WatchLeasesRequest, grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error
	inspect func(*brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error)
	reclaim func(*brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error)
}

func (f *fakeBroker) InspectPort(ctx context.Context, req *brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error) {
	if f.inspect == nil {
		return f.UnimplementedBrokerServiceServer.InspectPort(ctx, req)
	}
	return f.inspect(req)
}

func (f *fakeBroker) ReclaimPort(ctx context.Context, req *brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error) {
	if f.reclaim == nil {
		return f.UnimplementedBrokerServiceServer.ReclaimPort(ctx, req)
	}
	return f.reclaim(req)
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

// serve runs srv until the test ends and returns its address: a unix
// socket in a temporary directory, or loopback TCP on Windows.
func serve(t *testing.T, srv brokerpb.BrokerServiceServer) string {
	t.Helper()
	addr := "tcp://127.0.0.1:0"
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
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
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

// now is the clock of every command under test.
var now = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

type result struct {
	code           int
	stdout, stderr string
}

// brokerctl runs the command line in-process.
func brokerctl(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
	code := c.run(t.Context(), args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lines splits output into lines, each into whitespace-separated fields.
func lines(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Fields(line))
	}
	return out
}
