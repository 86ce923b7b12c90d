//go:build unix

package client_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/portbroker/portbroker/client/clienttest"
)

var daemon struct {
	once     sync.Once
	dir, bin string
	err      error
}

// daemonBin builds portbrokerd once per test binary.
func daemonBin(t *testing.T) string {
	t.Helper()
	daemon.once.Do(func() {
		if daemon.dir, daemon.err = os.MkdirTemp("", "pbbin"); daemon.err != nil {
			return
		}
		daemon.bin, daemon.err = clienttest.Build(context.Background(), daemon.dir, "github.com/portbroker/portbroker/cmd/portbrokerd")
	})
	if daemon.err != nil {
		t.Fatal(daemon.err)
	}
	return daemon.bin
}

// cleanupDaemons fails the run if a test left a daemon behind, and removes
// the built binary.
func cleanupDaemons(code int) int {
	if daemon.bin != "" {
		// No test may leave a daemon behind.
		pids, err := clienttest.Processes(daemon.bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "check for leftover daemons: %v\n", err)
			code = 1
		}
		for _, pid := range pids {
			fmt.Fprintf(os.Stderr, "portbrokerd pid %d outlived the tests; killing it\n", pid)
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
			code = 1
		}
	}
	if daemon.dir != "" {
		os.RemoveAll(daemon.dir)
	}
	return code
}
