package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portbroker/portbroker/client/clienttest"
)

func TestMain(m *testing.M) {
	// The test binary re-executes itself as lease owners.
	if isOwnerHelper() {
		ownerMain()
		os.Exit(0)
	}
	os.Exit(clienttest.CheckLeftovers(m.Run()))
}

func TestParseFlags(t *testing.T) {
	t.Setenv("BROKERBENCH_PORTSERVER", "") // the --portserver default
	tests := []struct {
		name    string
		args    []string
		want    func(c *config)
		wantErr string
		// linuxOnly cases expect, elsewhere, the error naming the option.
		linuxOnly bool
	}{
		{name: "defaults", args: nil, want: func(c *config) {}},
		{name: "quick", args: []string{"--quick"}, want: func(c *config) {
			c.quick, c.duration, c.refusals, c.owners, c.idle = true, quick.duration, quick.refusals, quick.owners, quick.idle
		}},
		{name: "quick keeps what is set", args: []string{"--quick", "--owners", "7", "--duration", "1s"}, want: func(c *config) {
			c.quick, c.duration, c.refusals, c.owners, c.idle = true, time.Second, quick.refusals, 7, quick.idle
		}},
		{name: "clients", args: []string{"--clients", "4, 1,4"}, want: func(c *config) { c.clients = []int{4, 1} }},
		{name: "daemon args", args: []string{"--daemon-arg=--log-level=warn", "--daemon-arg", "--grace=1s"}, want: func(c *config) {
			c.daemonArgs = []string{"--log-level=warn", "--grace=1s"}
		}},
		{name: "json", args: []string{"-o", "json"}, want: func(c *config) { c.output = "json" }},
		{name: "bad output", args: []string{"-o", "yaml"}, wantErr: "-o: "},
		{name: "bad clients", args: []string{"--clients", "1,0"}, wantErr: "--clients: "},
		{name: "addr with daemon", args: []string{"--addr", "unix:///x.sock", "--daemon", "/bin/true"}, wantErr: "--addr targets a live daemon"},
		{name: "leases", args: []string{"--leases", "0"}, wantErr: "--leases: "},
		{name: "range", args: []string{"--range-start", "60000"}, wantErr: "--range-start: "},
		{name: "owners", args: []string{"--owners", "-1"}, wantErr: "--owners: "},
		{name: "duration", args: []string{"--duration", "1ms"}, wantErr: "--duration: "},
		{name: "argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "runs", args: []string{"--runs", "0"}, wantErr: "--runs: "},
		{name: "versus", args: []string{"--versus", "--portserver", "/p/portserver.py", "--python", "/usr/bin/python3", "--versus-calls", "600"}, want: func(c *config) {
			c.versus, c.portserver, c.python, c.versusCalls = true, "/p/portserver.py", "/usr/bin/python3", 600
		}, linuxOnly: true},
		{name: "churn", args: []string{"--churn", "--churn-for", "5s", "--churn-clients", "4", "--churn-owners", "2"}, want: func(c *config) {
			c.churn, c.churnFor, c.churnClients, c.churnOwners = true, 5*time.Second, 4, 2
		}},
		{name: "versus and churn", args: []string{"--versus", "--churn"}, wantErr: "pick one"},
		{name: "versus with runs", args: []string{"--versus", "--runs", "2"}, wantErr: "--runs repeats the full run only"},
		{name: "versus calls", args: []string{"--versus-calls", "9001"}, wantErr: "--versus-calls: "},
		{name: "churn for", args: []string{"--churn-for", "10ms"}, wantErr: "--churn-for: "},
		{name: "churn clients", args: []string{"--churn-clients", "0"}, wantErr: "--churn-clients: "},
		{name: "churn owners", args: []string{"--churn-owners", "257"}, wantErr: "--churn-owners: "},
	}
	base := config{
		output: "table", duration: full.duration, clients: []int{1, 16}, leases: 10000, rangeStart: 20000,
		refusals: full.refusals, owners: full.owners, idle: full.idle, fillClients: 16, runs: 1,
		versusCalls: 4000, python: "python3", churnFor: 30 * time.Second, churnClients: 32, churnOwners: 8,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, &strings.Builder{})
			if tt.linuxOnly && runtime.GOOS != "linux" {
				tt.wantErr = "runs only on Linux"
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := base
			tt.want(&want)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("parseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"--leases", "x"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit code %d, want 2 (usage); stderr:\n%s", code, stderr.String())
	}
	if code := run(t.Context(), []string{"--daemon", t.TempDir()}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d for a --daemon that is a directory, want 1", code)
	}
	if !strings.Contains(stderr.String(), "--daemon: ") {
		t.Errorf("stderr does not name --daemon:\n%s", stderr.String())
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		want Latency
	}{
		{in: nil, want: Latency{}},
		{in: ms(5), want: Latency{P50US: 5000, P99US: 5000, MaxUS: 5000}},
		{in: ms(4, 1, 3, 2), want: Latency{P50US: 2000, P99US: 4000, MaxUS: 4000}},
		{in: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), want: Latency{P50US: 5000, P99US: 10000, MaxUS: 10000}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	// 200 samples: p99 is the 198th, not the maximum.
	in := make([]time.Duration, 200)
	for i := range in {
		in[i] = time.Duration(i+1) * time.Microsecond
	}
	if got := summarize(in); got.P50US != 100 || got.P99US != 198 || got.MaxUS != 200 {
		t.Errorf("summarize(1..200µs) = %+v, want p50 100, p99 198, max 200", got)
	}
}

func TestDaemonEnv(t *testing.T) {
	got := daemonEnv([]string{"HOME=/h", "PORTBROKER_ADDR=tcp://127.0.0.1:1", "portbroker_state_dir=/s", "PATH=/bin"})
	if want := []string{"HOME=/h", "PATH=/bin"}; !cmp.Equal(got, want) {
		t.Errorf("daemonEnv = %q, want %q", got, want)
	}
}

func TestEvaluate(t *testing.T) {
	r := &Results{
		Throughput: []Level{{Clients: 1, Ratio: 0.4}, {Clients: 16, Ratio: 0.59}, {Clients: 4, Ratio: 0.1}},
		Refusal:    &Refusal{Held: 10000, Latency: Latency{P99US: 999}},
		Reclaim:    &Reclaim{Owners: 50, Latency: Latency{P99US: 20000}},
		Start:      &Start{Leases: 10000, WithLeasesMS: 499},
		Resources: []Resources{
			{When: whenStarted, RSSMB: 50, CPUPercent: 0.1},
			{When: whenFilled, Leases: 10000, RSSMB: 40, CPUPercent: 0.5},
		},
	}
	r.evaluate()
	got := map[string]bool{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg.Met
	}
	want := map[string]bool{
		"ratio broker/empty, clients=1":  true,
		"ratio broker/empty, clients=16": false,
		"refusal p99":                    true,
		"reclaim p99":                    false,
		"start to healthy, with leases":  true,
		"idle CPU, " + whenStarted:       true,
		"RSS, " + whenFilled:             false,
		"idle CPU, " + whenFilled:        false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets met (-want +got):\n%s", diff)
	}
}

func TestSummarise(t *testing.T) {
	run := func(ratio, refusalP99 float64) *Results {
		return &Results{
			Throughput: []Level{{Clients: 1, Ratio: ratio}},
			Refusal:    &Refusal{Latency: Latency{P99US: refusalP99}},
		}
	}
	tests := []struct {
		name    string
		runs    []*Results
		want    map[string]FigureStats
		wantMet map[string]bool
	}{
		{
			name: "odd",
			runs: []*Results{run(0.5, 900), run(0.3, 2000), run(0.45, 800)},
			want: map[string]FigureStats{
				"ratio broker/empty, clients=1": {Median: 0.45, Min: 0.3, Max: 0.5, N: 3},
				"refusal p99":                   {Median: 900, Min: 800, Max: 2000, N: 3, Unit: "µs"},
			},
			wantMet: map[string]bool{"ratio broker/empty, clients=1": true, "refusal p99": true},
		},
		{
			name: "even",
			runs: []*Results{run(0.2, 900), run(0.5, 1200)},
			want: map[string]FigureStats{
				"ratio broker/empty, clients=1": {Median: 0.35, Min: 0.2, Max: 0.5, N: 2},
				"refusal p99":                   {Median: 1050, Min: 900, Max: 1200, N: 2, Unit: "µs"},
			},
			wantMet: map[string]bool{"ratio broker/empty, clients=1": false, "refusal p99": false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := summarise(tt.runs)
			got := map[string]FigureStats{}
			for _, f := range s.Figures {
				if _, ok := tt.want[f.Name]; ok {
					name := f.Name
					f.Name = ""
					got[name] = f
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
			met := map[string]bool{}
			for _, tg := range s.Targets {
				met[tg.Name] = tg.Met
			}
			if diff := cmp.Diff(tt.wantMet, met); diff != "" {
				t.Errorf("targets on the medians (-want +got):\n%s", diff)
			}
			var b strings.Builder
			if err := writeSummaryTable(&b, s); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), fmt.Sprintf("median of %d runs", len(tt.runs))) {
				t.Errorf("summary table lacks its heading:\n%s", b.String())
			}
		})
	}
}
