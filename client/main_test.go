package client_test

import (
	"fmt"
	"os"
	"os/signal"
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
	os.Exit(clienttest.CheckLeftovers(m.Run()))
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
