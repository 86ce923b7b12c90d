//go:build linux || darwin

package unix

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// wantSignaled fails the test unless ws is death by sig.
func wantSignaled(t testing.TB, ws syscall.WaitStatus, sig syscall.Signal) {
	t.Helper()
	if !ws.Signaled() || ws.Signal() != sig {
		t.Errorf("child ended with %#x; want killed by %v", ws, sig)
	}
}

// waitGone waits until every one of procs has exited, failing the test if
// one has not within failAfter.
func waitGone(t *testing.T, h *Host, procs ...broker.Process) {
	t.Helper()
	w, err := h.NewExitWatcher(10 * time.Millisecond)
	if err != nil {
		t.Fatalf("exit watcher: %v", err)
	}
	defer w.Close()
	left := make(map[procKey]bool)
	for _, p := range procs {
		mustAdd(t, w, p)
		left[keyOf(p)] = true
	}
	timeout := time.After(failAfter)
	for len(left) > 0 {
		select {
		case p := <-w.Exits():
			delete(left, keyOf(p))
		case <-timeout:
			t.Fatalf("%d of %v still running after %v", len(left), procs, failAfter)
		}
	}
}

func TestTerminate(t *testing.T) {
	h := New()
	c := runChild(t)
	if err := h.Terminate(c.lookup(t, h)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	wantSignaled(t, c.waitExit(t), syscall.SIGTERM)
}

func TestKillAfterIgnoredTerminate(t *testing.T) {
	h := New()
	c := startHelper(t, "ignoreterm", nil)
	c.wait(t)
	p := c.lookup(t, h)
	if err := h.Terminate(p); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	c.ping(t) // still running
	if err := h.Kill(p); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	wantSignaled(t, c.waitExit(t), syscall.SIGKILL)
}

// signalers are the ways to signal a process, each with a signal that
// would end a wait helper.
var signalers = []struct {
	name   string
	signal func(h *Host, p broker.Process) error
}{
	{"Terminate", (*Host).Terminate},
	{"Kill", (*Host).Kill},
	{"SignalGroup", func(h *Host, p broker.Process) error { return h.SignalGroup(p, syscall.SIGKILL) }},
}

// A PID that now names another process is never signalled.
func TestSignalReusedPID(t *testing.T) {
	h := New()
	for _, s := range signalers {
		t.Run(s.name, func(t *testing.T) {
			c := startHelper(t, "wait", func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} })
			c.wait(t)
			p := c.lookup(t, h)
			old := p
			old.StartTime = p.StartTime.Add(-time.Second)
			if err := s.signal(h, old); !errors.Is(err, broker.ErrNoProcess) {
				t.Errorf("%s(%v started %v) = %v; want ErrNoProcess", s.name, old, old.StartTime, err)
			}
			// A SIGKILL sent before the ping would end the child before
			// it could answer.
			c.ping(t)
			if cur := c.lookup(t, h); !cur.Same(p) {
				t.Errorf("child is now %v; want it untouched, %v", cur, p)
			}
		})
	}
}

func TestSignalExited(t *testing.T) {
	h := New()
	tests := []struct {
		name string
		proc func(t *testing.T) broker.Process
	}{
		{"reaped", func(t *testing.T) broker.Process {
			c := runChild(t)
			p := c.lookup(t, h)
			c.killAndReap(t)
			return p
		}},
		{"zombie", func(t *testing.T) broker.Process {
			c := runChild(t)
			p := c.lookup(t, h)
			c.kill(t)
			waitZombie(t, c.pid())
			return p
		}},
	}
	for _, tt := range tests {
		for _, s := range signalers {
			t.Run(tt.name+"/"+s.name, func(t *testing.T) {
				p := tt.proc(t)
				if err := s.signal(h, p); !errors.Is(err, broker.ErrNoProcess) {
					t.Errorf("%s(%v) = %v; want ErrNoProcess", s.name, p, err)
				}
			})
		}
	}
}

func TestSignalRefused(t *testing.T) {
	h := New()
	init, err := h.Lookup(1)
	if err != nil {
		t.Fatalf("Lookup(1): %v", err)
	}
	tests := []struct {
		p    broker.Process
		want error
	}{
		{broker.Process{PID: 0}, broker.ErrInvalid},
		{broker.Process{PID: -1}, broker.ErrInvalid},
		{init, broker.ErrPermission},
	}
	for _, tt := range tests {
		for _, s := range signalers {
			if err := s.signal(h, tt.p); !errors.Is(err, tt.want) {
				t.Errorf("%s(%v) = %v; want %v", s.name, tt.p, err, tt.want)
			} else if tt.p.PID == 1 && !strings.Contains(err.Error(), "pid 1") {
				t.Errorf("%s(%v) = %q; want it to name pid 1", s.name, tt.p, err)
			}
		}
	}
}

func TestSignalGroup(t *testing.T) {
	h := New()
	tr := startTree(t, h, 1, 2, func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} })
	if err := h.SignalGroup(tr.lookup(t, h), syscall.SIGKILL); err != nil {
		t.Fatalf("SignalGroup: %v", err)
	}
	wantSignaled(t, tr.waitExit(t), syscall.SIGKILL)
	// Its children were in its group; their stdin is still open, so only
	// the signal ends them.
	waitGone(t, h, tr.procs...)
}

func TestSignalGroupNotLeader(t *testing.T) {
	h := New()
	// In this test's process group, which must not be signalled: signal 0
	// would be harmless if it were.
	c := runChild(t)
	p := c.lookup(t, h)
	err := h.SignalGroup(p, 0)
	if !errors.Is(err, ErrNotGroupLeader) {
		t.Errorf("SignalGroup(a process in its parent's group) = %v; want ErrNotGroupLeader", err)
	}
	c.ping(t)
}

func TestSignalError(t *testing.T) {
	p := broker.Process{PID: 4242, Name: "node"}
	tests := []struct {
		err  error
		want error
	}{
		{nil, nil},
		{syscall.ESRCH, broker.ErrNoProcess},
		{syscall.EPERM, broker.ErrPermission},
		{syscall.EINVAL, syscall.EINVAL},
	}
	for _, tt := range tests {
		err := signalError(p, syscall.SIGTERM, tt.err)
		if !errors.Is(err, tt.want) || err != nil && !strings.Contains(err.Error(), "pid 4242 (node)") {
			t.Errorf("signalError(%v) = %v; want %v, naming pid 4242 (node)", tt.err, err, tt.want)
		}
	}
}
