//go:build unix

package daemon

import (
	"github.com/portbroker/portbroker/internal/ipc"
	"google.golang.org/grpc"
	"path/filepath"
	"testing"
	"time"

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
