//go:build unix

package main

import (
	"bufio"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
)

// startDaemonizing runs a service that daemonizes under brokerctl run and
// returns brokerctl and the PID of the process left holding the port,
// once the broker has moved the lease to it.
func startDaemonizing(t *testing.T, addr string, c *client.Client) (*exec.Cmd, int) {
	t.Helper()
	cmd := cliProcess([]string{helperEnv + "=daemonize"}, "--addr", addr, "run", "svc", "--", os.Args[0])
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
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no line from the service: %v", err)
	}
	daemon := ints(t, line)[0]
	killStray(t, daemon)
	deadline := time.Now().Add(failAfter)
	for {
		l := leaseNamed(t, c, "svc")
		if l == nil {
			t.Fatal("lease of the daemonized service reclaimed")
		}
		if l.OwnerPID == daemon {
			if l.LauncherPID != cmd.Process.Pid {
				t.Fatalf("lease launcher %d, want brokerctl run %d", l.LauncherPID, cmd.Process.Pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease owner still %d after %v, want the daemon %d", l.OwnerPID, failAfter, daemon)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("brokerctl run exited although its service lives on")
	}
	return cmd, daemon
}

// A service that double-forks away from brokerctl run is stopped when
// brokerctl run is SIGKILLed, and its lease reclaimed.
func TestRunDaemonizedStoppedWhenLauncherKilled(t *testing.T) {
	d, c := realDaemon(t)
	cmd, daemon := startDaemonizing(t, d.Addr, c)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, daemon)
	deadline := time.Now().Add(failAfter)
	for leaseNamed(t, c, "svc") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("lease left %v after the service stopped", failAfter)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctrl-C on brokerctl run reaches a service that daemonized; brokerctl
// exits once its lease ends.
func TestRunDaemonizedInterrupted(t *testing.T) {
	d, c := realDaemon(t)
	cmd, daemon := startDaemonizing(t, d.Addr, c)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitGone(t, daemon)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatalf("brokerctl run still runs %v after its service stopped", failAfter)
	}
	if l := leaseNamed(t, c, "svc"); l != nil {
		t.Errorf("lease %s left after the service stopped", l.ID)
	}
}
