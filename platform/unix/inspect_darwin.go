package unix

import (
	"errors"
	"fmt"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// Flags of kinfo_proc, from <sys/proc.h> and <sys/sysctl.h>.
const (
	pSystem      = 0x200 // P_SYSTEM: a kernel process (kernel_task)
	eprocSleader = 0x2   // EPROC_SLEADER: the session leader
	noDev        = -1    // NODEV: e_tdev of a process without a terminal
)

func (procTable) inspect(pid int) (broker.ProcessInfo, error) {
	kp, err := kinfo(pid)
	if err != nil {
		return broker.ProcessInfo{}, err
	}
	return infoOf(kp), nil
}

// infoOf returns the facts of the process kp describes.
func infoOf(kp *xunix.KinfoProc) broker.ProcessInfo {
	p := processOf(kp)
	info := broker.ProcessInfo{
		Process:       p,
		PPID:          int(kp.Eproc.Ppid),
		KernelThread:  p.PID == 0 || kp.Proc.P_flag&pSystem != 0,
		SessionLeader: kp.Eproc.Flag&eprocSleader != 0 && kp.Eproc.Tdev != noDev,
	}
	if info.PPID > 1 {
		parent, err := kinfo(info.PPID)
		info.ParentAlive = err == nil && !processOf(parent).StartTime.After(p.StartTime)
	}
	// Another user's arguments cannot be read without privilege, and the
	// kernel has none; both leave Exe and Cmdline empty.
	if raw, err := xunix.SysctlRaw("kern.procargs2", p.PID); err == nil {
		info.Exe, info.Cmdline, _ = parseProcArgs(raw)
	}
	info.System = isSystem(info)
	return info
}

func (t procTable) descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	all, err := xunix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil, fmt.Errorf("descendants of %v: sysctl kern.proc.all: %w", p, err)
	}
	var root *xunix.KinfoProc
	children := make(map[int32][]*xunix.KinfoProc)
	for i := range all {
		kp := &all[i]
		if kp.Proc.P_stat == zombie {
			continue
		}
		if int(kp.Proc.P_pid) == p.PID {
			root = kp
		}
		children[kp.Eproc.Ppid] = append(children[kp.Eproc.Ppid], kp)
	}
	if root == nil {
		return nil, fmt.Errorf("%v: %w", p, broker.ErrNoProcess)
	}
	if cur := processOf(root); !cur.Same(p) {
		return nil, fmt.Errorf("%v: pid now names a process started at %v: %w", p, cur.StartTime, broker.ErrNoProcess)
	}

	// Breadth first, so children come before grandchildren; see the Linux
	// version for seen.
	seen := map[int32]bool{root.Proc.P_pid: true}
	var infos []broker.ProcessInfo
	for queue := []*xunix.KinfoProc{root}; len(queue) > 0; queue = queue[1:] {
		parent := queue[0]
		for _, c := range children[parent.Proc.P_pid] {
			if seen[c.Proc.P_pid] || processOf(c).StartTime.Before(processOf(parent).StartTime) {
				continue
			}
			seen[c.Proc.P_pid] = true
			queue = append(queue, c)
			info, err := t.inspect(int(c.Proc.P_pid))
			if errors.Is(err, broker.ErrNoProcess) || err == nil && !info.Same(processOf(c)) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("descendants of %v: %w", p, err)
			}
			infos = append(infos, info)
		}
	}
	return infos, nil
}
