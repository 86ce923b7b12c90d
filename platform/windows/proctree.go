package windows

import (
	"errors"
	"strings"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// ProtectedNames are the image names of the processes Windows cannot run
// without: the kernel's System process, the session and logon managers, the
// service control manager, the security authority and the service host. The
// broker never stops them, whoever asks. Callers must not modify the slice.
var ProtectedNames = []string{
	"System",
	"smss.exe",
	"csrss.exe",
	"wininit.exe",
	"winlogon.exe",
	"services.exe",
	"lsass.exe",
	"svchost.exe",
}

// serviceAccountSIDs are the accounts Windows runs its own services under:
// LocalSystem, LocalService and NetworkService.
var serviceAccountSIDs = []string{"S-1-5-18", "S-1-5-19", "S-1-5-20"}

// isSystemProcess reports whether a process belongs to Windows itself: the
// idle and System processes (PIDs 0 and 4), a process on ProtectedNames, or
// one running as a service account.
func isSystemProcess(pid int, name, sid string) bool {
	if pid == 0 || pid == 4 {
		return true
	}
	for _, n := range ProtectedNames {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	for _, s := range serviceAccountSIDs {
		if sid == s {
			return true
		}
	}
	return false
}

// procEntry is one process of a Toolhelp snapshot.
type procEntry struct {
	PID, PPID int
	Name      string
}

// descendants walks the snapshot entries breadth-first from root, which
// started at rootStart, and returns the PIDs of its live descendants,
// children before grandchildren. startOf says when a process started, or
// false when that cannot be told (it has exited, or may not be opened);
// such a process, and whatever lies under it, is left out.
//
// Windows keeps a process's parent PID after the parent exits and reuses
// PIDs, so the snapshot's parent links may name an unrelated, younger
// process. A process therefore counts as a child only if it started no
// earlier than its parent, and no later than taken, the time the snapshot
// was complete: a PID reused after the snapshot names a process that was not
// in it.
func descendants(entries []procEntry, root int, rootStart, taken time.Time, startOf func(pid int) (time.Time, bool)) []int {
	children := make(map[int][]int)
	for _, e := range entries {
		// The idle process is its own parent.
		if e.PID != e.PPID {
			children[e.PPID] = append(children[e.PPID], e.PID)
		}
	}
	type node struct {
		pid   int
		start time.Time
	}
	seen := map[int]bool{root: true}
	queue := []node{{root, rootStart}}
	var out []int
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, c := range children[n.pid] {
			if seen[c] {
				continue
			}
			seen[c] = true
			start, ok := startOf(c)
			if !ok || start.Before(n.start) || start.After(taken) {
				continue
			}
			out = append(out, c)
			queue = append(queue, node{c, start})
		}
	}
	return out
}

// parentAlive decides whether a process that started at childStart still
// has its parent: ppid must name a process in the snapshot that started no
// later than the child. parentStart says when the process now holding ppid
// started. When it may not be opened (an error matching
// broker.ErrPermission), the process in the snapshot counts as the parent,
// since nothing shows that it is not.
func parentAlive(entries map[int]procEntry, ppid int, childStart time.Time, parentStart func(pid int) (time.Time, error)) bool {
	if ppid <= 0 {
		return false
	}
	if _, in := entries[ppid]; !in {
		return false
	}
	start, err := parentStart(ppid)
	switch {
	case errors.Is(err, broker.ErrPermission):
		return true
	case err != nil:
		return false
	}
	return !start.After(childStart)
}
