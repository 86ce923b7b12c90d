package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100

// daemonAttr makes the kernel stop the daemon if brokerbench dies without
// cleaning up.
func daemonAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// ownerAttr does the same for owner helpers, which have nothing to save.
func ownerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// sampleProc reads a process's resident set (VmRSS in /proc/PID/status,
// and its parts: anonymous memory, mapped files such as the binary and the
// lease store, shared memory) and CPU time (utime+stime in /proc/PID/stat).
func sampleProc(pid int) (procSample, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("daemon pid %d: %w", pid, err)
	}
	var s procSample
	fields := map[string]*int64{"VmRSS:": &s.rss, "RssAnon:": &s.anon, "RssFile:": &s.file, "RssShmem:": &s.shmem}
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst, ok := fields[string(f[0])]
		if !ok {
			continue
		}
		if len(f) != 3 || string(f[2]) != "kB" {
			return procSample{}, fmt.Errorf("/proc/%d/status: %q: want \"%s N kB\"", pid, line, f[0])
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return procSample{}, fmt.Errorf("/proc/%d/status: %s %w", pid, f[0], err)
		}
		*dst = kb << 10
	}
	if s.rss == 0 {
		return procSample{}, fmt.Errorf("/proc/%d/status: no VmRSS line", pid)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("daemon pid %d: %w", pid, err)
	}
	if s.cpu, err = parseStatCPU(stat); err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// parseStatCPU returns utime+stime from /proc/PID/stat: "PID (COMM) STATE
// ... UTIME STIME ...", fields 14 and 15, counted after the command name,
// which may hold spaces and parentheses.
func parseStatCPU(b []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("no parenthesised command name in %q", b)
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3, the state.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, i := range []int{14, 15} {
		n, err := strconv.ParseUint(string(f[i-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}
