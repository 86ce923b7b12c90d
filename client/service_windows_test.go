package client_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// serveAsServiceOnTCP serves the Windows service's TCP transport from a
// new service state dir (under a new %ProgramData%), as the daemon does:
// its token, certificate and address record there. Calls that pass the
// token reach a broker that implements nothing.
func serveAsServiceOnTCP(t *testing.T, record bool) string {
	t.Helper()
	for _, env := range []string{ipc.EnvToken, ipc.EnvTokenFile, ipc.EnvCertFile, ipc.EnvStateDir, client.EnvAddr} {
		t.Setenv(env, "")
	}
	t.Setenv("ProgramData", t.TempDir())
	t.Setenv("LOCALAPPDATA", t.TempDir()) // the user's own state dir: empty
	dir, err := ipc.ServiceStateDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := ipc.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + ln.Addr().String()
	token, tokenPath, err := ipc.RotateServiceToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ipc.NewServiceCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if record {
		if _, err := ipc.WriteServiceAddr(dir, addr); err != nil {
			t.Fatal(err)
		}
	}
	unary, stream := ipc.TokenInterceptors(token, tokenPath)
	srv := grpc.NewServer(grpc.Creds(ipc.ServerCredentials(ipc.WithTLS(cert))),
		grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	brokerpb.RegisterBrokerServiceServer(srv, brokerpb.UnimplementedBrokerServiceServer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

// With neither the user's pipe nor the service pipe served, the default
// address falls back to the TCP address the service recorded, and the
// client sends it the token from the service's state dir.
func TestNewFallsBackToServiceTCP(t *testing.T) {
	addr := serveAsServiceOnTCP(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithAutoStart(false))
	if err != nil {
		t.Fatalf("New with the service on %s: %v", addr, err)
	}
	defer c.Close()
	if c.Addr() != addr {
		t.Errorf("Addr() = %s, want the service's %s", c.Addr(), addr)
	}
	// Unimplemented, not Unauthenticated: the token got through.
	_, err = c.RPC().GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("GetStatus = %v; want Unimplemented from past the token check", err)
	}
}

// Without the record nothing points the client at the service's port.
func TestNewNoServiceRecord(t *testing.T) {
	serveAsServiceOnTCP(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.WithAutoStart(false))
	if err == nil {
		c.Close()
		t.Fatalf("New reached %s with no daemon at the default address and no service record", c.Addr())
	}
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("New = %v; want ErrUnavailable", err)
	}
}
