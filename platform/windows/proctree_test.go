package windows

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

func TestIsSystemProcess(t *testing.T) {
	tests := []struct {
		pid  int
		name string
		sid  string
		want bool
	}{
		{0, "System Idle Process", "", true},
		{4, "System", "S-1-5-18", true},
		{4, "", "", true},
		{612, "csrss.exe", "", true},
		{700, "LSASS.EXE", "", true},
		{812, "svchost.exe", "S-1-5-21-1-2-3-1001", true},
		{813, "System", "", true},
		{900, "spoolsv.exe", "S-1-5-18", true},
		{901, "dwm.exe", "S-1-5-19", true},
		{902, "sqlservr.exe", "S-1-5-20", true},
		{1200, "python.exe", "S-1-5-21-1-2-3-1001", false},
		{1201, "svchost.exe.bak", "S-1-5-21-1-2-3-1001", false},
		{1202, "node.exe", "", false},
		// A user's SID that merely starts like a service account's.
		{1203, "node.exe", "S-1-5-180", false},
	}
	for _, tt := range tests {
		if got := isSystemProcess(tt.pid, tt.name, tt.sid); got != tt.want {
			t.Errorf("isSystemProcess(%d, %q, %q) = %v, want %v", tt.pid, tt.name, tt.sid, got, tt.want)
		}
	}
}

func TestDescendantsWalk(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	taken := at(1000)
	entries := []procEntry{
		{PID: 0, PPID: 0, Name: "[System Process]"},
		{PID: 4, PPID: 0, Name: "System"},
		{PID: 100, PPID: 4, Name: "launcher.exe"},
		{PID: 200, PPID: 100, Name: "server.exe"},
		{PID: 204, PPID: 100, Name: "worker.exe"},
		{PID: 300, PPID: 200, Name: "grandchild.exe"},
		{PID: 304, PPID: 204, Name: "gone.exe"},
		{PID: 400, PPID: 304, Name: "under-gone.exe"},
		// Started before its recorded parent: its real parent was an
		// older process whose PID 100 now names the launcher.
		{PID: 500, PPID: 100, Name: "stale.exe"},
		{PID: 504, PPID: 500, Name: "under-stale.exe"},
		// A PID reused after the snapshot was taken.
		{PID: 600, PPID: 200, Name: "reused.exe"},
		// A parent loop, which stale parent PIDs can form.
		{PID: 700, PPID: 704, Name: "loop-a.exe"},
		{PID: 704, PPID: 700, Name: "loop-b.exe"},
	}
	starts := map[int]time.Time{
		4: at(0), 100: at(10), 200: at(20), 204: at(20), 300: at(30),
		400: at(40), 500: at(5), 504: at(6), 600: at(1001), 700: at(70), 704: at(70),
	}
	startOf := func(pid int) (time.Time, bool) {
		s, ok := starts[pid]
		return s, ok
	}
	tests := []struct {
		root  int
		start time.Time
		want  []int
	}{
		{root: 100, start: at(10), want: []int{200, 204, 300}},
		{root: 200, start: at(20), want: []int{300}},
		{root: 300, start: at(30), want: nil},
		{root: 500, start: at(5), want: []int{504}},
		{root: 700, start: at(70), want: []int{704}},
		// A root given an earlier start than its children still has them;
		// one given a later start has none.
		{root: 100, start: at(1), want: []int{200, 204, 500, 300, 504}},
		{root: 100, start: at(25), want: nil},
		{root: 999, start: at(0), want: nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("root %d at %v", tt.root, tt.start.Sub(base)), func(t *testing.T) {
			got := descendants(entries, tt.root, tt.start, taken, startOf)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("descendants (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParentAlive(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := map[int]procEntry{
		4:   {PID: 4, PPID: 0},
		100: {PID: 100, PPID: 4},
		200: {PID: 200, PPID: 100},
		300: {PID: 300, PPID: 100},
	}
	parentStart := func(pid int) (time.Time, error) {
		switch pid {
		case 4:
			return time.Time{}, fmt.Errorf("open process 4: %w", broker.ErrPermission)
		case 100:
			return base, nil
		case 300:
			return time.Time{}, fmt.Errorf("process 300: %w", broker.ErrNoProcess)
		}
		return time.Time{}, fmt.Errorf("unexpected pid %d", pid)
	}
	tests := []struct {
		name       string
		ppid       int
		childStart time.Time
		want       bool
	}{
		{"parent older", 100, base.Add(time.Second), true},
		{"parent same instant", 100, base, true},
		{"parent younger: its PID was reused", 100, base.Add(-time.Second), false},
		{"parent not in snapshot", 900, base, false},
		{"no parent", 0, base, false},
		{"parent may not be opened", 4, base, true},
		{"parent exited after the snapshot", 300, base, false},
	}
	for _, tt := range tests {
		if got := parentAlive(entries, tt.ppid, tt.childStart, parentStart); got != tt.want {
			t.Errorf("%s: parentAlive(ppid %d) = %v, want %v", tt.name, tt.ppid, got, tt.want)
		}
	}
}
