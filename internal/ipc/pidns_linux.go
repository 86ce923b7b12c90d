package ipc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ErrPIDNotInNamespace matches a TranslatePID error for a PID that names
// no process in the caller's PID namespace that the daemon can see.
var ErrPIDNotInNamespace = errors.New("no such process in the caller's PID namespace")

// pidNamespace is the PID namespace pid lives in ("pid:[INODE]"), or ""
// when it cannot be read (the process is gone, or /proc is not ours).
func pidNamespace(pid int) string {
	if pid <= 0 {
		return ""
	}
	link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return ""
	}
	return link
}

// ownPIDNamespace is the daemon's PID namespace, which never changes.
var ownPIDNamespace = sync.OnceValue(func() string { return pidNamespace(os.Getpid()) })

// TranslatePID turns a PID as the caller named it, in the caller's PID
// namespace, into the PID of the same process in the daemon's. A caller
// in the daemon's namespace (or one whose namespace is unknown) names PIDs
// as the daemon sees them. Otherwise the process must live in the caller's
// namespace itself; its PID there is the last entry of the NSpid line of
// /proc/PID/status.
func TranslatePID(id Identity, pid int) (int, error) {
	if pid <= 0 || id.PIDNamespace == "" || id.PIDNamespace == ownPIDNamespace() {
		return pid, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("translate pid %d from the caller's PID namespace: %w", pid, err)
	}
	want := strconv.Itoa(pid)
	for _, p := range procs {
		host, err := strconv.Atoi(p.Name())
		if err != nil || pidNamespace(host) != id.PIDNamespace {
			continue
		}
		if nsPIDs := readNSpid(host); len(nsPIDs) > 0 && nsPIDs[len(nsPIDs)-1] == want {
			// The namespace could have changed under us if host exited and
			// its PID was reused meanwhile: check again.
			if pidNamespace(host) == id.PIDNamespace {
				return host, nil
			}
		}
	}
	return 0, fmt.Errorf("pid %d (caller's PID namespace %s): %w", pid, id.PIDNamespace, ErrPIDNotInNamespace)
}

// readNSpid returns the NSpid entries of /proc/PID/status, outermost
// namespace first.
func readNSpid(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}
