package unix

import (
	"strings"
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"
)

// waitZombie blocks until process pid has exited, without reaping it.
func waitZombie(t testing.TB, pid int) {
	t.Helper()
	var info xunix.Siginfo
	for {
		err := xunix.Waitid(xunix.P_PID, pid, &info, xunix.WEXITED|xunix.WNOWAIT, nil)
		if err == xunix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("waitid(%d): %v", pid, err)
		}
		return
	}
}

func TestParseStat(t *testing.T) {
	// Fields 4 to 21, then starttime 4242, then the rest: PPID 1, PGRP 2,
	// SESSION 3, TTY_NR 4, TPGID 5, FLAGS 6.
	const mid = " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18"
	mids := func(comm string, state byte, start uint64) procStat {
		return procStat{comm: comm, state: state, ppid: 1, pgrp: 2, session: 3, ttyNr: 4, flags: 6, startTicks: start}
	}
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr string
	}{
		{"plain", "1234 (sleep) S" + mid + " 4242 99 100\n", mids("sleep", 'S', 4242), ""},
		{"comm with spaces and parens", "1234 (a) b (c)) R" + mid + " 4242 99\n", mids("a) b (c)", 'R', 4242), ""},
		{"empty comm", "7 () S" + mid + " 1 2", mids("", 'S', 1), ""},
		{"zombie", "7 (x) Z" + mid + " 5 0", mids("x", 'Z', 5), ""},
		{"starttime last", "7 (x) S" + mid + " 5\n", mids("x", 'S', 5), ""},
		{
			"kthreadd",
			"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 23 0 0 18446744073709551615 0 0\n",
			procStat{comm: "kthreadd", state: 'S', flags: 2129984, startTicks: 23}, "",
		},
		{
			"login shell",
			"4100 (bash) S 4099 4100 4100 34816 4200 4194560 1 2 3 4 5 6 7 8 20 0 1 0 777 0\n",
			procStat{comm: "bash", state: 'S', ppid: 4099, pgrp: 4100, session: 4100, ttyNr: 34816, flags: 4194560, startTicks: 777}, "",
		},
		{"negative tty", "7 (x) S 1 2 3 -4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5", procStat{comm: "x", state: 'S', ppid: 1, pgrp: 2, session: 3, ttyNr: -4, flags: 6, startTicks: 5}, ""},
		{"no parens", "1234 sleep S" + mid + " 4242", procStat{}, "no parenthesised command name"},
		{"close before open", "1234 )sleep( S" + mid + " 4242", procStat{}, "no parenthesised command name"},
		{"truncated", "1234 (sleep) S 1 2 3", procStat{}, "field 7 missing"},
		{"empty", "", procStat{}, "no parenthesised command name"},
		{"long state", "7 (x) SS" + mid + " 5", procStat{}, "state \"SS\""},
		{"bad ppid", "7 (x) S -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5", procStat{}, "field 4 \"-1\""},
		{"bad flags", "7 (x) S 1 2 3 4 5 0x6 7 8 9 10 11 12 13 14 15 16 17 18 5", procStat{}, "field 9 \"0x6\""},
		{"huge pid", "7 (x) S 9999999999 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5", procStat{}, "field 4 \"9999999999\""},
		{"bad starttime", "7 (x) S" + mid + " 5x 0", procStat{}, "starttime \"5x\""},
		{"negative starttime", "7 (x) S" + mid + " -5 0", procStat{}, "starttime \"-5\""},
		{"double space", "7 (x) S" + mid + "  5 0", procStat{}, "starttime \"\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStat(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStat(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseStatusUID(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{"real uid first", "Name:\tx\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n", "1000", ""},
		{"root", "Uid:\t0\t0\t0\t0\n", "0", ""},
		{"name looks like uid", "Name:\tUid: 5\nUid:\t7\t7\t7\t7\n", "7", ""},
		{"no uid", "Name:\tx\nGid:\t1\t1\t1\t1\n", "", "no Uid line"},
		{"empty uid", "Uid:\n", "", "no Uid line"},
		{"bad uid", "Uid:\tx\t0\t0\t0\n", "", "want a decimal uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusUID([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStatusUID(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatusUID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseBootTime(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Time
		wantErr  string
	}{
		{"typical", "cpu  1 2 3\nintr 5\nctxt 9\nbtime 1700000000\nprocesses 3\n", time.Unix(1700000000, 0), ""},
		{"last line without newline", "cpu 1\nbtime 12", time.Unix(12, 0), ""},
		{"missing", "cpu 1\nctxt 2\n", time.Time{}, "no btime line"},
		{"garbage", "btime soon\n", time.Time{}, "btime \"soon\""},
		{"absurd", "btime 99999999999999\n", time.Time{}, "want seconds since 1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBootTime([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseBootTime(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("parseBootTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
