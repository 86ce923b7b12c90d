package main

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

// The test binary plays every process the tests need:
//
//	os.Args[1] == "__exec"  brokerctl run's shim, as in main
//	$BROKERCTL_TEST_CLI=1   brokerctl itself, for tests that signal or kill it
//	$BROKERCTL_TEST_HELPER  a child with a job to do (helpers_*_test.go)
const (
	cliEnv    = "BROKERCTL_TEST_CLI"
	helperEnv = "BROKERCTL_TEST_HELPER"
)

func TestMain(m *testing.M) {
	if code, ok := runAsShim(os.Args[1:]); ok {
		os.Exit(code)
	}
	if os.Getenv(cliEnv) == "1" {
		// Its children are helpers, not brokerctl.
		os.Unsetenv(cliEnv)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	// No test starts a daemon by accident at the user's default address.
	os.Setenv("PORTBROKER_NO_AUTOSTART", "1")
	code := m.Run()
	if daemon.bin != "" {
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
