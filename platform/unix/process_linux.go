package unix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. It is 100 on
// every architecture Go supports.
const clockTicks = 100

// procTable reads processes from /proc.
type procTable struct {
	// bootTime is read once: the kernel derives btime from the wall clock, so
	// it can shift when the clock is stepped, and start times must not.
	bootTime func() (time.Time, error)
	cache    *procCache
}

func newProcTable() procTable {
	return procTable{bootTime: sync.OnceValues(readBootTime), cache: newProcCache()}
}

// lookup returns the live process with this PID, from the cache when it
// is known alive.
func (t procTable) lookup(pid int) (broker.Process, error) {
	return t.lookupCached(pid)
}

// close releases the cache's pidfds.
func (t procTable) close() { t.cache.close() }

func (t procTable) lookupUncached(pid int) (broker.Process, error) {
	p, err := t.open(pid)
	if err != nil {
		return broker.Process{}, err
	}
	xunix.Close(p.dir)
	return p.process, nil
}

// openProc is a live process opened under /proc: the directory, for more
// reads that must describe the same process, its stat line, and the
// broker's identity of it.
type openProc struct {
	dir     int
	st      procStat
	process broker.Process
}

// open reads stat and status through one directory descriptor, so that
// both describe the same process even if the PID is reused in between. The
// caller closes dir.
func (t procTable) open(pid int) (openProc, error) {
	if pid <= 0 {
		return openProc{}, fmt.Errorf("pid %d: %w", pid, broker.ErrNoProcess)
	}
	boot, err := t.bootTime()
	if err != nil {
		return openProc{}, err
	}
	dir, err := xunix.Open("/proc/"+strconv.Itoa(pid), xunix.O_RDONLY|xunix.O_DIRECTORY|xunix.O_CLOEXEC, 0)
	if err != nil {
		return openProc{}, procError(pid, "open", err)
	}
	p, err := readProc(dir, pid, boot)
	if err != nil {
		xunix.Close(dir)
		return openProc{}, err
	}
	return p, nil
}

func readProc(dir, pid int, boot time.Time) (openProc, error) {
	var buf [1024]byte
	n, err := readAt(dir, "stat", buf[:])
	if err != nil {
		return openProc{}, procError(pid, "read stat", err)
	}
	st, err := parseStat(buf[:n])
	if err != nil {
		return openProc{}, fmt.Errorf("pid %d: /proc/%d/stat: %w", pid, pid, err)
	}
	if st.state == 'Z' || st.state == 'X' {
		return openProc{}, fmt.Errorf("pid %d: exited: %w", pid, broker.ErrNoProcess)
	}
	n, err = readAt(dir, "status", buf[:])
	if err != nil {
		return openProc{}, procError(pid, "read status", err)
	}
	uid, err := parseStatusUID(buf[:n])
	if err != nil {
		return openProc{}, fmt.Errorf("pid %d: /proc/%d/status: %w", pid, pid, err)
	}
	return openProc{dir: dir, st: st, process: broker.Process{
		PID:       pid,
		StartTime: startTime(boot, st.startTicks),
		Name:      st.comm,
		User:      uid,
	}}, nil
}

// startTime converts a /proc start time in clock ticks since boot. Every
// reader of start times uses it, so that their processes compare Same.
func startTime(boot time.Time, ticks uint64) time.Time {
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks))
}

// procError maps the errors of a vanished process to broker.ErrNoProcess.
func procError(pid int, op string, err error) error {
	if errors.Is(err, xunix.ENOENT) || errors.Is(err, xunix.ESRCH) {
		return fmt.Errorf("pid %d: %w", pid, broker.ErrNoProcess)
	}
	return fmt.Errorf("pid %d: %s /proc/%d: %w", pid, op, pid, err)
}

// readAt reads the start of file name in directory dir into buf.
func readAt(dir int, name string, buf []byte) (int, error) {
	fd, err := xunix.Openat(dir, name, xunix.O_RDONLY|xunix.O_CLOEXEC, 0)
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

// procStat is what the host needs from /proc/PID/stat.
type procStat struct {
	comm    string
	state   byte
	ppid    int
	pgrp    int
	session int
	// ttyNr is the controlling terminal's device number, 0 for none.
	ttyNr      int64
	flags      uint64
	startTicks uint64
}

// parseStat reads /proc/PID/stat: "PID (COMM) STATE PPID PGRP SESSION
// TTY_NR TPGID FLAGS ... STARTTIME ...". COMM may hold spaces and
// parentheses, so the fields start after the last ')'; STARTTIME is field 22.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("want \"PID (COMM) FIELDS...\": no parenthesised command name")
	}
	st := procStat{comm: string(b[open+1 : end])}
	rest := bytes.TrimRight(b[end+1:], "\n")
	// Fields 3 to 22, one space before each.
	var field []byte
	for i := 3; i <= 22; i++ {
		if len(rest) == 0 || rest[0] != ' ' {
			return procStat{}, fmt.Errorf("field %d missing: want 22 or more space-separated fields", i)
		}
		rest = rest[1:]
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		field, rest = rest[:j], rest[j:]
		var ok bool
		switch i {
		case 3:
			if len(field) != 1 {
				return procStat{}, fmt.Errorf("state %q: want one letter", string(field))
			}
			st.state, ok = field[0], true
		case 4:
			st.ppid, ok = parsePID(field)
		case 5:
			st.pgrp, ok = parsePID(field)
		case 6:
			st.session, ok = parsePID(field)
		case 7:
			st.ttyNr, ok = parseSigned(field)
		case 9:
			st.flags, ok = parseDecimal(field)
		default:
			ok = true
		}
		if !ok {
			return procStat{}, fmt.Errorf("field %d %q: want a decimal number", i, string(field))
		}
	}
	ticks, ok := parseDecimal(field)
	if !ok {
		return procStat{}, fmt.Errorf("starttime %q: want a decimal number of clock ticks", string(field))
	}
	st.startTicks = ticks
	return st, nil
}

// parseStatusUID returns the real uid from the "Uid:" line of
// /proc/PID/status ("Uid:\tREAL\tEFFECTIVE\tSAVED\tFS").
func parseStatusUID(b []byte) (string, error) {
	var line []byte
	for len(b) > 0 {
		var ok bool
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if line, ok = bytes.CutPrefix(line, []byte("Uid:")); ok {
			line = bytes.TrimLeft(line, " \t")
			if i := bytes.IndexAny(line, " \t"); i >= 0 {
				line = line[:i]
			}
			if len(line) == 0 {
				break
			}
			if _, ok := parseDecimal(line); !ok {
				return "", fmt.Errorf("status line Uid %q: want a decimal uid", string(line))
			}
			return string(line), nil
		}
	}
	return "", errors.New("no Uid line")
}

// parseDecimal parses a non-empty unsigned decimal that fits in 64 bits,
// without the allocation strconv would make for a []byte.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parsePID parses a decimal PID, which the kernel keeps below 2^22.
func parsePID(b []byte) (int, bool) {
	n, ok := parseDecimal(b)
	if !ok || n > 1<<31-1 {
		return 0, false
	}
	return int(n), true
}

// parseSigned parses a decimal with an optional leading '-'.
func parseSigned(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, ok := parseDecimal(b)
	if !ok || n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// readBootTime returns the boot time from the btime line of /proc/stat.
func readBootTime() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	return parseBootTime(data)
}

func parseBootTime(b []byte) (time.Time, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, ok := parseDecimal(bytes.TrimSpace(v))
			if !ok || sec > 1<<40 {
				return time.Time{}, fmt.Errorf("/proc/stat: btime %q: want seconds since 1970", v)
			}
			return time.Unix(int64(sec), 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat: no btime line")
}
