//go:build linux || darwin

package ipc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestIdentityOverUnixSocket(t *testing.T) {
	noClientToken(t)
	addr := "unix://" + filepath.Join(t.TempDir(), "id.sock")
	// The server has a token; a unix socket caller needs none.
	rec := serve(t, listen(t, addr), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "/state/token")
	conn := dialTest(t, addr)
	if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check: %v", err)
	}
	unaryErr, streamErr := callBroker(t.Context(), conn)
	if unaryErr != nil || streamErr != nil {
		t.Fatalf("broker calls over a unix socket without a token: %v, %v; want both to pass", unaryErr, streamErr)
	}

	want := Identity{PID: os.Getpid(), UID: strconv.Itoa(os.Geteuid()), Admin: os.Geteuid() == 0, Known: true, PIDNamespace: pidNamespace(os.Getpid())}
	calls := rec.all()
	if len(calls) != 3 {
		t.Fatalf("server saw %d calls, want 3", len(calls))
	}
	for _, c := range calls {
		if !c.ok || c.id != want {
			t.Errorf("%s: IdentityFrom = %+v, %v; want %+v, true", c.method, c.id, c.ok, want)
		}
	}
}

// TestIdentityOfChildProcess checks that the identity is the peer's, not
// the server's own: the caller is another process.
func TestIdentityOfChildProcess(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "child.sock")
	rec := serve(t, listen(t, addr), "", "/state/token")

	cmd := helperCommand(t, addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child call: %v: %s", err, stderr.Bytes())
	}
	calls := rec.all()
	if len(calls) != 1 {
		t.Fatalf("server saw %d calls, want 1", len(calls))
	}
	want := Identity{PID: cmd.Process.Pid, UID: strconv.Itoa(os.Geteuid()), Admin: os.Geteuid() == 0, Known: true, PIDNamespace: pidNamespace(os.Getpid())}
	if got := calls[0]; !got.ok || got.id != want {
		t.Errorf("IdentityFrom = %+v, %v; want the child's %+v", got.id, got.ok, want)
	}
}

// helperCommand returns a command that runs this test binary to make one
// broker call to addr.
func helperCommand(t *testing.T, addr string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return helperCommandAt(exe, addr)
}

// helperCommandAt is helperCommand for a copy of the binary at exe.
func helperCommandAt(exe, addr string) *exec.Cmd {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envHelper+"=call", envHelperAddr+"="+addr)
	return cmd
}
