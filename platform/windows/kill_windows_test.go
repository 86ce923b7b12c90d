package windows

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

func TestKill(t *testing.T) {
	h := New()
	c := startHelper(t, "block", (*exec.Cmd).Start)
	p := lookup(t, c.cmd.Process.Pid)

	// A recorded start time that does not match is another process: it
	// must be left alone.
	for _, other := range []broker.Process{
		{PID: p.PID, StartTime: p.StartTime.Add(-time.Second)},
		{PID: p.PID, StartTime: p.StartTime.Add(time.Hour)},
	} {
		if err := h.Kill(other); !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("Kill(%v started %v) = %v, want ErrNoProcess", other, other.StartTime, err)
		}
		if err := h.Terminate(other); !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("Terminate(%v started %v) = %v, want ErrNoProcess", other, other.StartTime, err)
		}
	}
	if again, err := h.Lookup(p.PID); err != nil || !again.Same(p) {
		t.Fatalf("child after refused kills: %+v, %v; want it alive", again, err)
	}

	if err := h.Kill(p); err != nil {
		t.Fatal(err)
	}
	if code := c.waitExit(t); code != 1 {
		t.Errorf("killed child exit code %d, want 1", code)
	}
	if err := h.Kill(p); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Kill(dead child) = %v, want ErrNoProcess", err)
	}
	if err := h.Terminate(p); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Terminate(dead child) = %v, want ErrNoProcess", err)
	}
}

func TestKillBadPID(t *testing.T) {
	h := New()
	for _, pid := range []int{0, -4, 0x7ffffffd} {
		p := broker.Process{PID: pid, StartTime: time.Now()}
		if err := h.Kill(p); !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("Kill(pid %d) = %v, want ErrNoProcess", pid, err)
		}
	}
}

func TestTerminateClosesWindow(t *testing.T) {
	c := startHelper(t, "window", (*exec.Cmd).Start)
	if got := c.line(t); got != "ready" {
		t.Fatalf("window helper said %q", got)
	}
	p := lookup(t, c.cmd.Process.Pid)
	if err := New().Terminate(p); err != nil {
		t.Fatal(err)
	}
	// Exit code 0: it left its message loop, rather than being killed.
	if code := c.waitExit(t); code != 0 {
		t.Errorf("window helper exit code %d, want 0", code)
	}
}

func TestTerminateWithoutGracefulPath(t *testing.T) {
	c := startHelper(t, "block", (*exec.Cmd).Start)
	p := lookup(t, c.cmd.Process.Pid)
	if err := New().Terminate(p); !errors.Is(err, broker.ErrUnsupported) {
		t.Errorf("Terminate(console child of no group of ours) = %v, want ErrUnsupported", err)
	}
	if again, err := New().Lookup(p.PID); err != nil || !again.Same(p) {
		t.Errorf("child after Terminate: %+v, %v; want it alive", again, err)
	}
}

func TestTerminateConsoleGroup(t *testing.T) {
	if !onOurConsole(os.Getpid()) {
		t.Skip("this process has no console (as under Wine), so there is no console process group to signal")
	}
	job := newTestJob(t)
	c := startHelper(t, "interrupt", job.Start)
	if got := c.line(t); got != "ready" {
		t.Fatalf("interrupt helper said %q", got)
	}
	if err := New().Terminate(lookup(t, c.cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if code := c.waitExit(t); code != 0 {
		t.Errorf("interrupted helper exit code %d, want 0", code)
	}
}
