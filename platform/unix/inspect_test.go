//go:build linux || darwin

package unix

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// inspect inspects pid, failing the test if it cannot.
func inspect(t testing.TB, h *Host, pid int) broker.ProcessInfo {
	t.Helper()
	info, err := h.Inspect(pid)
	if err != nil {
		t.Fatalf("Inspect(%d): %v", pid, err)
	}
	return info
}

func TestInspectChild(t *testing.T) {
	h := New()
	c := runChild(t)
	p := c.lookup(t, h)
	info := inspect(t, h, c.pid())
	if !info.Same(p) || info.Name != p.Name || info.User != p.User {
		t.Errorf("Inspect gives %+v; want Lookup's %+v", info.Process, p)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if info.Exe != exe {
		t.Errorf("Exe = %q, want %q", info.Exe, exe)
	}
	if !slices.Equal(info.Cmdline, c.cmd.Args) {
		t.Errorf("Cmdline = %q, want %q", info.Cmdline, c.cmd.Args)
	}
	if info.PPID != os.Getpid() || !info.ParentAlive {
		t.Errorf("PPID, ParentAlive = %d, %t; want %d (this test), true", info.PPID, info.ParentAlive, os.Getpid())
	}
	if info.KernelThread || info.SessionLeader || info.System {
		t.Errorf("KernelThread, SessionLeader, System = %t, %t, %t; want all false", info.KernelThread, info.SessionLeader, info.System)
	}
	if info.LocalAddr != "" || info.Protocol != 0 {
		t.Errorf("LocalAddr, Protocol = %q, %v; want them unset outside Holders", info.LocalAddr, info.Protocol)
	}
}

func TestInspectOrphan(t *testing.T) {
	h := New()
	tr := startTree(t, h, 1, 1, nil)
	grandchild := tr.procs[0]
	if info := inspect(t, h, grandchild.PID); info.PPID != tr.pid() || !info.ParentAlive {
		t.Fatalf("before its parent died: PPID, ParentAlive = %d, %t; want %d, true", info.PPID, info.ParentAlive, tr.pid())
	}
	// The kernel reparents the grandchild before its parent becomes a
	// zombie, so once that is reaped the new parent shows.
	tr.killAndReap(t)
	info := inspect(t, h, grandchild.PID)
	if !info.Same(grandchild) {
		t.Fatalf("Inspect(%d) = %v; want %v", grandchild.PID, info.Process, grandchild)
	}
	if info.PPID != 1 {
		t.Skipf("the orphan was adopted by subreaper %d, not init; ParentAlive cannot tell", info.PPID)
	}
	if info.ParentAlive {
		t.Errorf("after its parent died: ParentAlive = true (PPID %d); want false", info.PPID)
	}
}

func TestInspectSetsidIsNotSessionLeader(t *testing.T) {
	h := New()
	c := startHelper(t, "wait", func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} })
	c.wait(t)
	if sid, err := xunix.Getsid(c.pid()); err != nil || sid != c.pid() {
		t.Fatalf("Getsid(child) = %d, %v; want the child's own pid %d", sid, err, c.pid())
	}
	if info := inspect(t, h, c.pid()); info.SessionLeader {
		t.Errorf("a setsid child without a terminal: SessionLeader = true; want false")
	}
}

func TestInspectInit(t *testing.T) {
	info := inspect(t, New(), 1)
	if !info.System {
		t.Errorf("Inspect(1) = %+v: System = false; want true", info)
	}
	if info.ParentAlive || info.KernelThread {
		t.Errorf("Inspect(1): ParentAlive, KernelThread = %t, %t; want false, false", info.ParentAlive, info.KernelThread)
	}
}

func TestInspectSelf(t *testing.T) {
	info := inspect(t, New(), os.Getpid())
	if want := strconv.Itoa(os.Getuid()); info.User != want || info.PID != os.Getpid() {
		t.Errorf("Inspect(self) = pid %d user %q; want pid %d user %q", info.PID, info.User, os.Getpid(), want)
	}
	if info.PPID != os.Getppid() || !info.ParentAlive {
		t.Errorf("Inspect(self): PPID, ParentAlive = %d, %t; want %d, true", info.PPID, info.ParentAlive, os.Getppid())
	}
}

func TestProtectedName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"init", true},
		{"systemd", true},
		{"systemd-journal", true}, // systemd-journald, cut to 15 bytes
		{"systemd-", true},
		{"sshd", true},
		{"dbus-daemon", true},
		{"launchd", true},
		{"ControlCenter", true},
		{"systemdx", false},
		{"initd", false},
		{"node", false},
		{"python3", false},
		{"SSHD", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := protectedName(tt.name); got != tt.want {
			t.Errorf("protectedName(%q) = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestDescendants(t *testing.T) {
	h := New()
	tr := startTree(t, h, 2, 2, nil)
	unrelated := runChild(t)
	root := tr.lookup(t, h)

	got, err := h.Descendants(root)
	if err != nil {
		t.Fatalf("Descendants(%v): %v", root, err)
	}
	var pids []int
	listed := map[int]bool{root.PID: true}
	for i, info := range got {
		pids = append(pids, info.PID)
		if _, ok := tr.depth[info.PID]; !ok {
			t.Errorf("Descendants lists %v, not in the tree (unrelated child %d, this test %d)", info.Process, unrelated.pid(), os.Getpid())
			continue
		}
		if i > 0 && tr.depth[info.PID] < tr.depth[got[i-1].PID] {
			t.Errorf("Descendants lists %d (depth %d) after %d (depth %d); want children before grandchildren",
				info.PID, tr.depth[info.PID], got[i-1].PID, tr.depth[got[i-1].PID])
		}
		if !listed[info.PPID] || !info.ParentAlive {
			t.Errorf("Descendants lists %d with parent %d (alive %t) before its parent", info.PID, info.PPID, info.ParentAlive)
		}
		listed[info.PID] = true
	}
	for _, p := range tr.procs {
		if !slices.ContainsFunc(got, func(info broker.ProcessInfo) bool { return info.Same(p) }) {
			t.Errorf("Descendants = %v; missing %v", pids, p)
		}
	}
	if len(got) != len(tr.procs) {
		t.Errorf("Descendants = %v; want the %d of the tree", pids, len(tr.procs))
	}
}

func TestDescendantsLeaf(t *testing.T) {
	h := New()
	c := runChild(t)
	got, err := h.Descendants(c.lookup(t, h))
	if err != nil || len(got) != 0 {
		t.Errorf("Descendants(a process without children) = %v, %v; want none", got, err)
	}
}

func TestDescendantsGone(t *testing.T) {
	h := New()
	tests := []struct {
		name string
		proc func(t *testing.T) broker.Process
	}{
		{"zero", func(*testing.T) broker.Process { return broker.Process{} }},
		{"reaped", func(t *testing.T) broker.Process {
			c := runChild(t)
			p := c.lookup(t, h)
			c.killAndReap(t)
			return p
		}},
		{"PID reused", func(t *testing.T) broker.Process {
			// The tree under the PID belongs to a process that started at
			// another time.
			tr := startTree(t, h, 1, 1, nil)
			p := tr.lookup(t, h)
			p.StartTime = p.StartTime.Add(-time.Second)
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proc(t)
			if got, err := h.Descendants(p); !errors.Is(err, broker.ErrNoProcess) {
				t.Errorf("Descendants(%v) = %v, %v; want ErrNoProcess", p, got, err)
			}
		})
	}
}

func BenchmarkInspect(b *testing.B) {
	h := New()
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Inspect(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDescendants measures a tree of 6 under a host's process count;
// the scan of every process dominates.
func BenchmarkDescendants(b *testing.B) {
	h := New()
	tr := startTree(b, h, 2, 2, nil)
	root := tr.lookup(b, h)
	b.ReportAllocs()
	for b.Loop() {
		got, err := h.Descendants(root)
		if err != nil || len(got) != len(tr.procs) {
			b.Fatalf("Descendants = %d processes, %v; want %d", len(got), err, len(tr.procs))
		}
	}
}
