package main

import (
	"os"
	"os/exec"
	"testing"

	"github.com/portbroker/portbroker/client"
)

// cliProcess prepares brokerctl as a process of its own, for tests that
// signal or kill it or whose children must outlive the test's stdout.
func cliProcess(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), cliEnv+"=1"), env...)
	return cmd
}

// leaseNamed returns the lease called name, or nil.
func leaseNamed(t *testing.T, c *client.Client, name string) *client.Lease {
	t.Helper()
	leases, err := c.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, l := range leases {
		if l.Name == name {
			return l
		}
	}
	return nil
}
