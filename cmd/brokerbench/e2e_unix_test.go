//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/portbroker/portbroker/client/clienttest"
)

// tiny is a quick run cut down to seconds: at most 200 broker calls per
// throughput level, a 300-port pool, 5 owners.
func tiny(t testing.TB, extra ...string) []string {
	return append([]string{
		"--daemon", clienttest.Binary(t), "--quick", "--calls", "200", "--duration", "1s",
		"--leases", "300", "--range-start", "21000", "--refusals", "50", "--owners", "5", "--idle", "200ms",
	}, extra...)
}

func TestRunQuick(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), tiny(t, "-o", "json", "--state-dir", t.TempDir()), &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var r Results
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}

	if !r.Daemon.Started || r.Daemon.PID <= 0 || r.Daemon.Addr == "" {
		t.Errorf("daemon = %+v, want a started daemon with a pid and address", r.Daemon)
	}
	if len(r.Throughput) != 2 || r.Throughput[0].Clients != 1 || r.Throughput[1].Clients != 16 {
		t.Fatalf("throughput levels = %+v, want 1 and 16 clients", r.Throughput)
	}
	for _, l := range r.Throughput {
		if l.Broker.Calls <= 0 || l.Broker.Calls > 200 || l.Broker.Calls%2 != 0 || l.Empty.Calls != l.Broker.Calls {
			t.Errorf("%d clients: %d broker and %d empty calls, want pairs of broker calls, at most 200, and as many empty calls", l.Clients, l.Broker.Calls, l.Empty.Calls)
		}
		if l.Ratio <= 0 || l.Broker.CallsPerSec <= 0 || l.Empty.CallsPerSec <= 0 {
			t.Errorf("%d clients: ratio %v, broker %v/s, empty %v/s: want all > 0", l.Clients, l.Ratio, l.Broker.CallsPerSec, l.Empty.CallsPerSec)
		}
		checkLatency(t, strconv.Itoa(l.Clients)+" clients broker", l.Broker.Latency)
		checkLatency(t, strconv.Itoa(l.Clients)+" clients acquire", l.Acquire)
		checkLatency(t, strconv.Itoa(l.Clients)+" clients release", l.Release)
		checkLatency(t, strconv.Itoa(l.Clients)+" clients empty", l.Empty.Latency)
	}
	if f := r.Refusal; f == nil {
		t.Error("no refusal figures")
	} else {
		if f.Held <= 0 || f.Held > 300 || f.Calls != 50 {
			t.Errorf("refusal = %+v, want 1 to 300 held and 50 calls", f)
		}
		checkLatency(t, "refusal", f.Latency)
	}
	if f := r.Reclaim; f == nil || f.Owners != 5 {
		t.Errorf("reclaim = %+v, want 5 owners", f)
	} else {
		checkLatency(t, "reclaim", f.Latency)
	}
	if f := r.Start; f == nil || f.EmptyMS <= 0 || f.WithLeasesMS <= 0 || r.Refusal == nil || f.Leases != r.Refusal.Held {
		t.Errorf("start = %+v, want both times and the %+v leases held", f, r.Refusal)
	}
	if runtime.GOOS == "linux" {
		var whens []string
		for _, res := range r.Resources {
			whens = append(whens, res.When)
			if res.RSSMB <= 0 || res.WindowSeconds <= 0 || res.CPUSeconds < 0 {
				t.Errorf("resources %+v: want RSS and window > 0", res)
			}
		}
		if want := []string{whenStarted, whenFilled, whenRestarted}; strings.Join(whens, ",") != strings.Join(want, ",") {
			t.Errorf("resource samples %q, want %q", whens, want)
		}
	}
	wantTargets := len(goals)
	if runtime.GOOS != "linux" {
		wantTargets -= 5 // no RSS or CPU figures without /proc
	}
	if len(r.Targets) != wantTargets {
		t.Errorf("%d targets %+v, want %d", len(r.Targets), r.Targets, wantTargets)
	}
	if err := syscall.Kill(r.Daemon.PID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("daemon pid %d after the run: kill 0 = %v, want ESRCH", r.Daemon.PID, err)
	}
	checkNoChildren(t)
	if _, err := os.Stat(r.Daemon.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s left behind: %v", r.Daemon.StateDir, err)
	}

	// The table shows every section of the same results.
	var table bytes.Buffer
	if err := writeTable(&table, &r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"throughput:", "acquire p50", "pool-empty refusal:", "reclaim after kill -9:", "start to healthy:", "daemon resources", "targets"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestRunInterrupted stops a run while it starts owners: it must fail,
// and leave no daemon or owner behind.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &cancelOn{substr: "owners for the reclaim figure", cancel: cancel}
	var stdout bytes.Buffer
	if code := run(ctx, tiny(t, "--owners", "50"), &stdout, stderr); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.buf.String())
	}
	if !strings.Contains(stderr.buf.String(), "context canceled") {
		t.Errorf("stderr does not say the run was canceled:\n%s", stderr.buf.String())
	}
	checkNoChildren(t)
}

// cancelOn is a progress writer that cancels the run at a step.
type cancelOn struct {
	buf    bytes.Buffer
	substr string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.substr)) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func checkLatency(t *testing.T, what string, l Latency) {
	t.Helper()
	if l.P50US <= 0 || l.P50US > l.P99US || l.P99US > l.MaxUS {
		t.Errorf("%s latency %+v: want 0 < p50 <= p99 <= max", what, l)
	}
}

// checkNoChildren fails if any process this test started is still around,
// reaped or not.
func checkNoChildren(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			t.Errorf("child pid %d (%s) outlived the run", pid, bytes.TrimSpace(stat[:bytes.LastIndexByte(stat, ')')+1]))
		}
	}
}
