package daemon

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	"google.golang.org/grpc"
)

// childModes are the roles the test binary can play as a child process,
// chosen by PORTBROKER_TEST_CHILD.
var childModes = map[string]func(){
	// sleep is a lease owner that lives until it is killed.
	"sleep": func() {
		time.Sleep(time.Hour)
		os.Exit(0)
	},
}

func TestMain(m *testing.M) {
	if mode, ok := childModes[os.Getenv("PORTBROKER_TEST_CHILD")]; ok {
		mode()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild starts a process that lives until killed; cleanup kills it.
func startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// daemonRun is one running daemon; stop ends it and waits.
type daemonRun struct {
	addr string
	d    *Daemon
	stop func() error
}

// startDaemon runs a daemon in this process on the platform's host.
func startDaemon(t *testing.T, cfg Config) *daemonRun {
	t.Helper()
	return startDaemonOn(t, cfg, testHost())
}

// startDaemonOn runs a daemon in this process on host.
func startDaemonOn(t *testing.T, cfg Config, host Host) *daemonRun {
	t.Helper()
	d, err := New(context.Background(), cfg, host, nil)
	if err != nil {
		t.Fatalf("daemon did not start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, nil) }()
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return &daemonRun{addr: d.Addr(), d: d, stop: stop}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
