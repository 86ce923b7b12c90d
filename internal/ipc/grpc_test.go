package ipc

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestDialOptionsReachGRPCServer(t *testing.T) {
	addrs := []string{"tcp://127.0.0.1:0"}
	if runtime.GOOS != "windows" {
		addrs = append(addrs, "unix://"+filepath.Join(t.TempDir(), "grpc.sock"))
	}
	for _, addr := range addrs {
		t.Run(strings.SplitN(addr, ":", 2)[0], func(t *testing.T) {
			ln, err := Listen(addr)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(addr, "tcp:") {
				addr = "tcp://" + ln.Addr().String()
			}
			// Over TCP the client pins the daemon's certificate.
			tlsOpt, certPath := daemonTLS(t)
			t.Setenv(EnvCertFile, certPath)
			srv := grpc.NewServer(grpc.Creds(ServerCredentials(tlsOpt)))
			healthpb.RegisterHealthServer(srv, health.NewServer())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			t.Cleanup(func() {
				srv.Stop()
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
			})

			target, opts, err := DialOptions(addr)
			if err != nil {
				t.Fatal(err)
			}
			if want := "passthrough:///" + addr; target != want {
				t.Errorf("target = %q, want %q", target, want)
			}
			conn, err := grpc.NewClient(target, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("health check over %s: %v", addr, err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health = %v, want SERVING", resp.GetStatus())
			}
		})
	}
}

func TestDialOptionsRejectsBadAddr(t *testing.T) {
	if _, _, err := DialOptions("tcp://10.1.1.1:80"); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("DialOptions(non-loopback) error = %v; want the loopback rule", err)
	}
}
