package main

import (
	"context"
	"os"
	"os/signal"
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
	os.Exit(clienttest.CheckLeftovers(m.Run()))
}
