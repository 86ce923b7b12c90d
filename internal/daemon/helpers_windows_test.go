package daemon

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	"github.com/portbroker/portbroker/platform/windows"
)

func testHost() Host { return windows.New() }

// testConfig serves loopback TCP: Wine, where these tests run in CI, has
// neither AF_UNIX nor a working named-pipe Accept.
func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	// Clients find the daemon's token and certificate where it writes them.
	t.Setenv(ipc.EnvStateDir, filepath.Join(dir, "state"))
	t.Setenv(ipc.EnvTokenFile, "")
	t.Setenv(ipc.EnvCertFile, "")
	return Config{
		Addr:         "tcp://127.0.0.1:0",
		StateDir:     filepath.Join(dir, "state"),
		PollInterval: time.Second,
		Version:      "test",
	}
}
