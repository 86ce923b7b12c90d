//go:build unix

package daemon

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	"google.golang.org/grpc"

	"github.com/portbroker/portbroker/platform/unix"
)

func testHost() Host { return unix.New() }

func testConfig(t *testing.T) Config {
	// Socket paths are short-limited; t.TempDir() under /tmp fits.
	dir := t.TempDir()
	return Config{
		Addr:         "unix://" + filepath.Join(dir, "b.sock"),
		StateDir:     filepath.Join(dir, "state"),
		PollInterval: time.Second,
		Version:      "test",
	}
}

// newTestConn dials addr the way clients do, for child processes that
// have no *testing.T.
func newTestConn(addr string) (*grpc.ClientConn, error) {
	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, opts...)
}

// startReporting starts cmd, a child that prints a number when it is
// ready (a port it holds, connections it made), and returns that number;
// the child is killed when the test ends.
func startReporting(t *testing.T, cmd *exec.Cmd, what string) int {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var n int
	if _, err := fmt.Fscan(out, &n); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return n
}
