package client_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"github.com/portbroker/portbroker/client/clienttest"
)

// helperEnv selects a helper mode of the test binary, for tests that need
// a process other than themselves.
const helperEnv = "CLIENT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	code := m.Run()
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
	os.Exit(code)
}

// helper runs a helper mode and returns its exit code.
func helper(mode string) int {
	switch mode {
	case "wait":
		// Live until stopped, as an owner for a lease.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		fmt.Println("ready")
		<-sig
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

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
