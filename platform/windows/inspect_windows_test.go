package windows

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

func TestInspectChild(t *testing.T) {
	h := New()
	self := lookup(t, os.Getpid())
	c := startHelper(t, "block", (*exec.Cmd).Start, "-test.run=^$", "an argument with spaces", `quote"d`)
	pid := c.cmd.Process.Pid
	info, err := h.Inspect(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !info.Same(lookup(t, pid)) {
		t.Errorf("Inspect start time %v, Lookup says another process", info.StartTime)
	}
	if info.PID != pid || !strings.EqualFold(info.Name, self.Name) || info.User != self.User {
		t.Errorf("Inspect(child) = %+v; want pid %d, name %s, user %s", info, pid, self.Name, self.User)
	}
	// Compare files, not strings: one path may be in 8.3 form.
	if !sameFile(t, info.Exe, exe) {
		t.Errorf("Inspect(child).Exe = %q, want %q", info.Exe, exe)
	}
	if info.PPID != os.Getpid() || !info.ParentAlive {
		t.Errorf("Inspect(child): parent %d alive %v; want %d alive", info.PPID, info.ParentAlive, os.Getpid())
	}
	if info.System || info.Orphan() {
		t.Errorf("Inspect(child): system %v, orphan %v; want neither", info.System, info.Orphan())
	}
	// Wine lacks ProcessCommandLineInformation: there the line comes from
	// the child's PEB.
	if len(info.Cmdline) == 0 {
		t.Fatalf("Inspect(child).Cmdline is empty; want %q", c.cmd.Args)
	}
	if diff := cmp.Diff(c.cmd.Args[1:], info.Cmdline[1:]); diff != "" {
		t.Errorf("command line arguments (-want +got):\n%s", diff)
	}
}

func TestInspectOrphan(t *testing.T) {
	h := New()
	c := startHelper(t, "tree", (*exec.Cmd).Start)
	parent := lookup(t, c.cmd.Process.Pid)
	gc := c.grandchild(t)
	info, err := h.Inspect(gc.PID)
	if err != nil {
		t.Fatal(err)
	}
	if info.PPID != parent.PID || !info.ParentAlive {
		t.Fatalf("grandchild: parent %d alive %v; want %d alive", info.PPID, info.ParentAlive, parent.PID)
	}

	kill(t, c.cmd)
	info, err = h.Inspect(gc.PID)
	if err != nil {
		t.Fatal(err)
	}
	// Windows keeps the dead parent's PID.
	if info.PPID != parent.PID || info.ParentAlive || !info.Orphan() {
		t.Errorf("orphaned grandchild: parent %d alive %v orphan %v; want %d, dead, orphan", info.PPID, info.ParentAlive, info.Orphan(), parent.PID)
	}
}

func TestInspectNoProcess(t *testing.T) {
	h := New()
	for _, pid := range []int{-1, 0x7ffffffd} {
		if got, err := h.Inspect(pid); !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("Inspect(%d) = %+v, %v; want ErrNoProcess", pid, got, err)
		}
	}
	c := startHelper(t, "block", (*exec.Cmd).Start)
	pid := c.cmd.Process.Pid
	kill(t, c.cmd)
	if got, err := h.Inspect(pid); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Inspect(killed child) = %+v, %v; want ErrNoProcess", got, err)
	}
}

func TestDescendants(t *testing.T) {
	h := New()
	self := lookup(t, os.Getpid())
	c := startHelper(t, "tree", (*exec.Cmd).Start)
	child := lookup(t, c.cmd.Process.Pid)
	gc := c.grandchild(t)

	got, err := h.Descendants(child)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Same(gc) || got[0].PPID != child.PID || !got[0].ParentAlive {
		t.Errorf("Descendants(child) = %+v; want only the grandchild %v", got, gc)
	}

	got, err = h.Descendants(self)
	if err != nil {
		t.Fatal(err)
	}
	ci := slices.IndexFunc(got, func(i broker.ProcessInfo) bool { return i.Same(child) })
	gi := slices.IndexFunc(got, func(i broker.ProcessInfo) bool { return i.Same(gc) })
	if ci < 0 || gi < ci {
		t.Errorf("Descendants(self) = %+v; want the child %v before the grandchild %v", got, child, gc)
	}

	if got, err := h.Descendants(gc); err != nil || len(got) != 0 {
		t.Errorf("Descendants(grandchild) = %+v, %v; want none", got, err)
	}
	// Once the child dies its grandchild is no one's descendant, even under
	// a process that takes the child's PID later.
	kill(t, c.cmd)
	if got, err := h.Descendants(child); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Descendants(dead child) = %+v, %v; want ErrNoProcess", got, err)
	}
}

func TestDescendantsReusedPID(t *testing.T) {
	c := startHelper(t, "tree", (*exec.Cmd).Start)
	child := lookup(t, c.cmd.Process.Pid)
	c.grandchild(t)
	// The child's PID with a later start time stands for a process that
	// took the PID after the child: the grandchild started before it.
	later := broker.Process{PID: child.PID, StartTime: child.StartTime.Add(time.Hour)}
	if got, err := New().Descendants(later); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Descendants(%v with another start time) = %+v, %v; want ErrNoProcess", child, got, err)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Error(err)
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Error(err)
		return false
	}
	return os.SameFile(fa, fb)
}
