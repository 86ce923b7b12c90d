//go:build unix

package daemon

import (
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
