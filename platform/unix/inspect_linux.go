package unix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// pfKthread is PF_KTHREAD, the flag of kernel threads in /proc/PID/stat.
// It is the test, rather than being PID 2 (kthreadd) or its child: in a PID
// namespace, PID 2 is an ordinary process, and kernel threads are not seen.
const pfKthread = 0x00200000

func (t procTable) inspect(pid int) (broker.ProcessInfo, error) {
	p, err := t.open(pid)
	if err != nil {
		return broker.ProcessInfo{}, err
	}
	defer xunix.Close(p.dir)
	dir, st := p.dir, p.st
	cmdline, err := readAllAt(dir, "cmdline")
	if err != nil {
		return broker.ProcessInfo{}, procError(pid, "read cmdline", err)
	}
	// Another user's exe cannot be read without privilege, and a kernel
	// thread has none; both leave Exe empty.
	exe := ""
	var link [4096]byte // PATH_MAX
	if n, err := xunix.Readlinkat(dir, "exe", link[:]); err == nil && n < len(link) {
		exe = string(link[:n])
	}

	info := broker.ProcessInfo{
		Process:       p.process,
		Exe:           exe,
		Cmdline:       splitCmdline(cmdline),
		PPID:          st.ppid,
		ParentAlive:   parentAlive(st),
		KernelThread:  st.flags&pfKthread != 0,
		SessionLeader: st.session == pid && st.ttyNr != 0,
	}
	info.System = isSystem(info)
	return info, nil
}

// parentAlive reports whether the parent of the process st describes
// lives, and started no later than the process, so is its parent and not a
// process that reused the parent's PID.
func parentAlive(st procStat) bool {
	if st.ppid <= 1 {
		return false
	}
	parent, err := readStat(st.ppid)
	return err == nil && parent.state != 'Z' && parent.state != 'X' && parent.startTicks <= st.startTicks
}

// readStat reads and parses /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	var buf [1024]byte
	n, err := readFile("/proc/"+strconv.Itoa(pid)+"/stat", buf[:])
	if err != nil {
		return procStat{}, procError(pid, "read stat", err)
	}
	st, err := parseStat(buf[:n])
	if err != nil {
		return procStat{}, fmt.Errorf("pid %d: /proc/%d/stat: %w", pid, pid, err)
	}
	return st, nil
}

// readFile reads the start of the file at path into buf, without the
// allocations of os.ReadFile.
func readFile(path string, buf []byte) (int, error) {
	fd, err := xunix.Open(path, xunix.O_RDONLY|xunix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer xunix.Close(fd)
	for {
		n, err := xunix.Read(fd, buf)
		if err == xunix.EINTR {
			continue
		}
		return n, err
	}
}

// readAllAt reads all of file name in directory dir.
func readAllAt(dir int, name string) ([]byte, error) {
	fd, err := xunix.Openat(dir, name, xunix.O_RDONLY|xunix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.Bytes(), err
}

// splitCmdline splits /proc/PID/cmdline, arguments each ended by a NUL. A
// process that rewrote its arguments (setproctitle) may leave a single
// string without one.
func splitCmdline(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	args := make([]string, 0, bytes.Count(b, []byte{0})+1)
	for arg := range bytes.SplitSeq(b, []byte{0}) {
		args = append(args, string(arg))
	}
	return args
}

// scanned is one process found by a scan of /proc.
type scanned struct {
	pid int
	st  procStat
}

// scanProcs reads /proc/PID/stat of every live process. Processes that
// exit during the scan, and those this user may not see, are left out.
func scanProcs() ([]scanned, error) {
	names, err := procPIDs()
	if err != nil {
		return nil, err
	}
	procs := make([]scanned, 0, len(names))
	for _, pid := range names {
		st, err := readStat(pid)
		if errors.Is(err, broker.ErrNoProcess) || errors.Is(err, xunix.EACCES) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if st.state == 'Z' || st.state == 'X' {
			continue
		}
		procs = append(procs, scanned{pid: pid, st: st})
	}
	return procs, nil
}

// procPIDs lists the PIDs under /proc.
func procPIDs() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, ok := parsePID([]byte(name)); ok && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (t procTable) descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	boot, err := t.bootTime()
	if err != nil {
		return nil, err
	}
	procs, err := scanProcs()
	if err != nil {
		return nil, fmt.Errorf("descendants of %v: %w", p, err)
	}
	i := slices.IndexFunc(procs, func(s scanned) bool { return s.pid == p.PID })
	if i < 0 {
		return nil, fmt.Errorf("%v: %w", p, broker.ErrNoProcess)
	}
	if cur := (broker.Process{PID: p.PID, StartTime: startTime(boot, procs[i].st.startTicks)}); !cur.Same(p) {
		return nil, fmt.Errorf("%v: pid now names a process started at %v: %w", p, cur.StartTime, broker.ErrNoProcess)
	}
	order := descendantOrder(procs, procs[i])
	infos := make([]broker.ProcessInfo, 0, len(order))
	for _, s := range order {
		info, err := t.inspect(s.pid)
		if errors.Is(err, broker.ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("descendants of %v: %w", p, err)
		}
		// Exited and reused since the scan: not a descendant.
		if !info.Same(broker.Process{PID: s.pid, StartTime: startTime(boot, s.st.startTicks)}) {
			continue
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// descendantOrder returns the descendants of root among procs, breadth
// first, so children come before grandchildren, and siblings in the order
// of procs. A process is a child of its parent only if it started no
// earlier. That rules out cycles; seen guards against a scan that caught
// PIDs mid-reuse within one clock tick.
func descendantOrder(procs []scanned, root scanned) []scanned {
	children := make(map[int][]scanned)
	for _, s := range procs {
		children[s.st.ppid] = append(children[s.st.ppid], s)
	}
	seen := map[int]bool{root.pid: true}
	var order []scanned
	for queue := []scanned{root}; len(queue) > 0; queue = queue[1:] {
		parent := queue[0]
		for _, c := range children[parent.pid] {
			if seen[c.pid] || c.st.startTicks < parent.st.startTicks {
				continue
			}
			seen[c.pid] = true
			order = append(order, c)
			queue = append(queue, c)
		}
	}
	return order
}
