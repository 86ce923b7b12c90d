package unix

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	xunix "golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair, skipping the test where there is
// none. Cleanup closes both ends.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	fd, err := xunix.Open("/dev/ptmx", xunix.O_RDWR|xunix.O_NOCTTY|xunix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	ptm = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { ptm.Close() })
	if err := xunix.IoctlSetPointerInt(fd, xunix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := xunix.IoctlGetUint32(fd, xunix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|xunix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// A login shell leads a session with a terminal.
func TestInspectSessionLeaderWithTerminal(t *testing.T) {
	_, pts := openPTY(t)
	h := New()
	c := startHelper(t, "wait", func(cmd *exec.Cmd) {
		cmd.ExtraFiles = []*os.File{pts}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	})
	c.wait(t)
	if info := inspect(t, h, c.pid()); !info.SessionLeader || info.System {
		t.Errorf("a setsid child with a controlling terminal: SessionLeader, System = %t, %t; want true, false", info.SessionLeader, info.System)
	}
}

func TestInspectKernelThread(t *testing.T) {
	comm, err := os.ReadFile("/proc/2/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "kthreadd" {
		t.Skipf("no kthreadd at pid 2 (in a PID namespace?): %q, %v", comm, err)
	}
	h := New()
	info := inspect(t, h, 2)
	if !info.KernelThread || !info.System || info.Exe != "" || len(info.Cmdline) != 0 {
		t.Errorf("Inspect(kthreadd) = %+v; want KernelThread and System, no Exe or Cmdline", info)
	}
	// One of its children, if this kernel shows any.
	procs, err := scanProcs()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(procs, func(s scanned) bool { return s.st.ppid == 2 }); i >= 0 {
		if info := inspect(t, h, procs[i].pid); !info.KernelThread {
			t.Errorf("Inspect(%d), a child of kthreadd: KernelThread = false; want true", procs[i].pid)
		}
	}
}

func TestDescendantOrder(t *testing.T) {
	proc := func(pid, ppid int, start uint64) scanned {
		return scanned{pid: pid, st: procStat{ppid: ppid, startTicks: start}}
	}
	tests := []struct {
		name  string
		procs []scanned
		root  int
		want  []int
	}{
		{
			name: "children before grandchildren",
			procs: []scanned{
				proc(1, 0, 0), proc(10, 1, 5), proc(11, 10, 6), proc(12, 11, 7),
				proc(13, 10, 6), proc(14, 11, 8), proc(15, 13, 9), proc(20, 1, 5),
			},
			root: 10,
			want: []int{11, 13, 12, 14, 15},
		},
		{
			name: "a reused parent PID is not followed",
			// 30 started before 10 took the PID its parent had: it is the
			// orphan of an earlier process 10, not a child of this one.
			procs: []scanned{proc(10, 1, 50), proc(30, 10, 40), proc(31, 30, 60), proc(32, 10, 50)},
			root:  10,
			want:  []int{32},
		},
		{
			name:  "no children",
			procs: []scanned{proc(10, 1, 5), proc(11, 1, 6)},
			root:  10,
			want:  nil,
		},
		{
			name:  "a cycle from PIDs reused within one tick",
			procs: []scanned{proc(10, 1, 5), proc(11, 10, 5), proc(12, 11, 5), proc(10, 12, 5)},
			root:  10,
			want:  []int{11, 12},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.procs[slices.IndexFunc(tt.procs, func(s scanned) bool { return s.pid == tt.root })]
			var got []int
			for _, s := range descendantOrder(tt.procs, root) {
				got = append(got, s.pid)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("descendantOrder(root %d) = %v; want %v", tt.root, got, tt.want)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", []string{""}},
		{"sleep\x0030\x00", []string{"sleep", "30"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"nginx: worker process", []string{"nginx: worker process"}},
	}
	for _, tt := range tests {
		if got := splitCmdline([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("splitCmdline(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
