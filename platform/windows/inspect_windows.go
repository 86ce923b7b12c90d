package windows

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

var (
	_ broker.ProcessInspector = (*Host)(nil)
	_ broker.PortHolders      = (*Host)(nil)
	_ broker.Killer           = (*Host)(nil)
)

// Inspect returns the facts of a live process: its start time, image name
// and path, command line, user SID, parent, and whether Windows itself runs
// it (PIDs 0 and 4, ProtectedNames, service accounts).
//
// The command line is empty when Windows will not give it (protected
// processes, or processes of other users for an unelevated caller). The
// parent counts as alive only if its PID names a process that started no
// later than this one, since Windows reuses the PIDs of exited parents.
//
// It returns an error matching broker.ErrNoProcess when there is no such
// process, and one matching broker.ErrPermission when Windows will not open
// it at all.
func (h *Host) Inspect(pid int) (broker.ProcessInfo, error) {
	// Open first: the handle keeps the PID from being reused while the
	// snapshot is taken, so the snapshot's entry for it is this process's.
	hp, canWait, err := openProcess(pid)
	if err != nil {
		return broker.ProcessInfo{}, err
	}
	defer xwin.CloseHandle(hp)
	snap, err := takeSnapshot()
	if err != nil {
		return broker.ProcessInfo{}, fmt.Errorf("inspect process %d: %w", pid, err)
	}
	return inspectHandle(hp, canWait, pid, snap)
}

// Descendants returns p's live descendants, children before grandchildren,
// from one snapshot of the process list. A process counts as a child only
// if it started no earlier than its parent (see descendants). Processes that
// may not be opened are left out, with whatever runs under them. It returns
// an error matching broker.ErrNoProcess when p has exited or its PID now
// names another process.
func (h *Host) Descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	hp, err := openSame(p, 0)
	if err != nil {
		return nil, err
	}
	defer xwin.CloseHandle(hp)
	// openSame checked p's start time at millisecond precision; the walk
	// compares the full one.
	rootStart, err := startTime(hp)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", p.PID, err)
	}
	snap, err := takeSnapshot()
	if err != nil {
		return nil, fmt.Errorf("descendants of %s: %w", p, err)
	}
	infos := make(map[int]broker.ProcessInfo)
	startOf := func(pid int) (time.Time, bool) {
		hc, canWait, err := openProcess(pid)
		if err != nil {
			return time.Time{}, false
		}
		defer xwin.CloseHandle(hc)
		info, err := inspectHandle(hc, canWait, pid, snap)
		if err != nil {
			return time.Time{}, false
		}
		infos[pid] = info
		return info.StartTime, true
	}
	pids := descendants(snap.entries, p.PID, rootStart, snap.taken, startOf)
	out := make([]broker.ProcessInfo, len(pids))
	for i, pid := range pids {
		out[i] = infos[pid]
	}
	return out, nil
}

// inspectHandle reads the facts of the process hp opens.
func inspectHandle(hp xwin.Handle, canWait bool, pid int, snap snapshot) (broker.ProcessInfo, error) {
	if err := checkRunning(hp, canWait); err != nil {
		return broker.ProcessInfo{}, fmt.Errorf("process %d: %w", pid, err)
	}
	start, err := startTime(hp)
	if err != nil {
		return broker.ProcessInfo{}, fmt.Errorf("process %d: %w", pid, err)
	}
	entry, inSnap := snap.byPID[pid]
	exe := imagePath(hp)
	name := entry.Name
	if exe != "" {
		name = filepath.Base(exe)
	}
	info := broker.ProcessInfo{
		Process: broker.Process{PID: pid, StartTime: start, Name: name, User: userSID(hp)},
		Exe:     exe,
		Cmdline: commandLine(hp, pid),
	}
	if inSnap {
		info.PPID = entry.PPID
		info.ParentAlive = parentAlive(snap.byPID, entry.PPID, start, processStart)
	}
	info.System = isSystemProcess(pid, name, info.User)
	return info, nil
}

// processStart returns when the live process pid started.
func processStart(pid int) (time.Time, error) {
	hp, canWait, err := openProcess(pid)
	if err != nil {
		return time.Time{}, err
	}
	defer xwin.CloseHandle(hp)
	if err := checkRunning(hp, canWait); err != nil {
		return time.Time{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return startTime(hp)
}

// openSame opens p with access plus what checking it needs, and returns an
// error matching broker.ErrNoProcess unless p still runs under the same PID
// and start time. Holding the handle keeps the PID from being reused.
func openSame(p broker.Process, access uint32) (xwin.Handle, error) {
	if p.PID <= 0 || uint64(p.PID) > 0xffffffff {
		return 0, fmt.Errorf("process %d: %w", p.PID, broker.ErrNoProcess)
	}
	hp, err := xwin.OpenProcess(access|xwin.PROCESS_QUERY_LIMITED_INFORMATION|xwin.SYNCHRONIZE, false, uint32(p.PID))
	if err != nil {
		return 0, openError(p.PID, err)
	}
	if err := checkRunning(hp, true); err != nil {
		xwin.CloseHandle(hp)
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	start, err := startTime(hp)
	if err != nil {
		xwin.CloseHandle(hp)
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	if !p.Same(broker.Process{PID: p.PID, StartTime: start}) {
		xwin.CloseHandle(hp)
		return 0, fmt.Errorf("%s: %w: the PID now names a process started at %s", p, broker.ErrNoProcess, start.Format(time.RFC3339Nano))
	}
	return hp, nil
}

// imagePath returns the full path of the process's executable, or "" when
// Windows will not say (the System process has no image file).
func imagePath(h xwin.Handle) string {
	for size := xwin.MAX_PATH; ; size = min(4*size, xwin.MAX_LONG_PATH) {
		buf := make([]uint16, size)
		n := uint32(len(buf))
		err := xwin.QueryFullProcessImageName(h, 0, &buf[0], &n)
		if err == nil {
			return xwin.UTF16ToString(buf[:n])
		}
		if !errors.Is(err, xwin.ERROR_INSUFFICIENT_BUFFER) || size == xwin.MAX_LONG_PATH {
			return ""
		}
	}
}

// snapshot is the process list at one moment.
type snapshot struct {
	entries []procEntry
	byPID   map[int]procEntry
	// taken is just after the snapshot was complete: every process in it
	// started before.
	taken time.Time
}

// takeSnapshot lists the processes with CreateToolhelp32Snapshot, which
// gives every process's parent PID and image name, even for processes that
// may not be opened.
func takeSnapshot() (snapshot, error) {
	h, err := xwin.CreateToolhelp32Snapshot(xwin.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return snapshot{}, fmt.Errorf("process snapshot: %w", err)
	}
	defer xwin.CloseHandle(h)
	snap := snapshot{byPID: make(map[int]procEntry), taken: time.Now()}
	var e xwin.ProcessEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	for err = xwin.Process32First(h, &e); err == nil; err = xwin.Process32Next(h, &e) {
		pe := procEntry{PID: int(e.ProcessID), PPID: int(e.ParentProcessID), Name: xwin.UTF16ToString(e.ExeFile[:])}
		snap.entries = append(snap.entries, pe)
		snap.byPID[pe.PID] = pe
	}
	if !errors.Is(err, xwin.ERROR_NO_MORE_FILES) {
		return snapshot{}, fmt.Errorf("process snapshot: %w", err)
	}
	return snap, nil
}
