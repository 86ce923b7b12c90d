package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one run measured. Its JSON form (-o json) is the
// stable output; the table shows the same figures for people.
type Results struct {
	Machine    Machine     `json:"machine"`
	Daemon     DaemonInfo  `json:"daemon"`
	Throughput []Level     `json:"throughput"`
	Refusal    *Refusal    `json:"refusal,omitempty"`
	Reclaim    *Reclaim    `json:"reclaim,omitempty"`
	Start      *Start      `json:"start,omitempty"`
	Resources  []Resources `json:"resources,omitempty"`
	Targets    []Target    `json:"targets"`
	// Skipped names the figures this run could not take, and why.
	Skipped []string `json:"skipped,omitempty"`
}

type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
}

type DaemonInfo struct {
	// Started is true when brokerbench started the daemon itself.
	Started  bool   `json:"started"`
	Binary   string `json:"binary,omitempty"`
	Addr     string `json:"addr"`
	StateDir string `json:"state_dir,omitempty"`
	Version  string `json:"version"`
	PID      int    `json:"pid"`
}

// Latency summarises the calls of one kind, each timed on its own.
type Latency struct {
	P50US float64 `json:"p50_us"`
	P99US float64 `json:"p99_us"`
	MaxUS float64 `json:"max_us"`
}

// Phase is one timed batch of calls.
type Phase struct {
	Calls       int64   `json:"calls"`
	Seconds     float64 `json:"seconds"`
	CallsPerSec float64 `json:"calls_per_sec"`
	Latency     Latency `json:"latency"`
	// DaemonCPUPerCallUS is the daemon's CPU time over the phase divided
	// by its calls; 0 when the daemon's CPU time cannot be read.
	DaemonCPUPerCallUS float64 `json:"daemon_cpu_per_call_us,omitempty"`
}

// Level is the throughput at one concurrency: AcquireLease+ReleaseLease
// pairs (each call counted) against the same count of empty calls.
type Level struct {
	Clients int     `json:"clients"`
	Broker  Phase   `json:"broker"`
	Acquire Latency `json:"acquire"`
	Release Latency `json:"release"`
	Empty   Phase   `json:"empty"`
	// Ratio is broker calls per second over empty calls per second.
	Ratio float64 `json:"ratio"`
}

type Refusal struct {
	Held    int     `json:"held"`
	Calls   int     `json:"calls"`
	Latency Latency `json:"latency"`
	// FillSeconds is how long taking the held leases took.
	FillSeconds float64 `json:"fill_seconds"`
}

type Reclaim struct {
	Owners  int     `json:"owners"`
	Latency Latency `json:"latency"`
}

// Start is the daemon's time from exec to its first SERVING health answer.
type Start struct {
	EmptyMS      float64 `json:"empty_store_ms"`
	Leases       int     `json:"leases"`
	WithLeasesMS float64 `json:"with_leases_ms"`
}

// Resources is a sample of the daemon's RSS and of its CPU time over a
// window in which brokerbench made no calls.
type Resources struct {
	When   string  `json:"when"`
	Leases int     `json:"leases"`
	RSSMB  float64 `json:"rss_mb"`
	// AnonMB is the heap and stacks; FileMB the mapped files: the
	// binary's pages in use and the lease store's.
	AnonMB        float64 `json:"rss_anon_mb"`
	FileMB        float64 `json:"rss_file_mb"`
	WindowSeconds float64 `json:"window_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	// CPUPercent is of one core.
	CPUPercent float64 `json:"cpu_percent"`
}

// Target is one goal of the benchmark issue and whether this run met it.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// summarize returns the nearest-rank p50, p99 and max of d, sorting it.
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	return Latency{P50US: us(percentile(d, 50)), P99US: us(percentile(d, 99)), MaxUS: us(d[len(d)-1])}
}

// percentile is the nearest-rank percentile p of sorted d.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func us(d time.Duration) float64 { return round3(float64(d) / float64(time.Microsecond)) }

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// figure is one number of a run, named so that runs can be compared.
type figure struct {
	name, unit string
	v          float64
}

// figures flattens r into its figures, in the order the table shows them.
func (r *Results) figures() []figure {
	var fs []figure
	add := func(name, unit string, v float64) { fs = append(fs, figure{name, unit, v}) }
	for _, l := range r.Throughput {
		c := fmt.Sprintf("clients=%d", l.Clients)
		add("broker calls/s, "+c, "calls/s", l.Broker.CallsPerSec)
		add("empty calls/s, "+c, "calls/s", l.Empty.CallsPerSec)
		add("ratio broker/empty, "+c, "", l.Ratio)
		add("broker p50, "+c, "µs", l.Broker.Latency.P50US)
		add("broker p99, "+c, "µs", l.Broker.Latency.P99US)
		add("empty p50, "+c, "µs", l.Empty.Latency.P50US)
		add("empty p99, "+c, "µs", l.Empty.Latency.P99US)
		if l.Broker.DaemonCPUPerCallUS > 0 {
			add("daemon CPU per broker call, "+c, "µs", l.Broker.DaemonCPUPerCallUS)
			add("daemon CPU per empty call, "+c, "µs", l.Empty.DaemonCPUPerCallUS)
		}
	}
	if f := r.Refusal; f != nil {
		add("refusal p50", "µs", f.Latency.P50US)
		add("refusal p99", "µs", f.Latency.P99US)
	}
	if f := r.Reclaim; f != nil {
		add("reclaim p50", "µs", f.Latency.P50US)
		add("reclaim p99", "µs", f.Latency.P99US)
	}
	if f := r.Start; f != nil {
		add("start to healthy, empty store", "ms", f.EmptyMS)
		if f.Leases > 0 {
			add("start to healthy, with leases", "ms", f.WithLeasesMS)
		}
	}
	for _, res := range r.Resources {
		add("RSS, "+res.When, "MB", res.RSSMB)
		add("RSS anon, "+res.When, "MB", res.AnonMB)
		add("RSS files, "+res.When, "MB", res.FileMB)
		add("idle CPU, "+res.When, "% of a core", res.CPUPercent)
	}
	return fs
}

// goal is a target of the benchmark issue on one figure.
type goal struct {
	figure string
	want   string
	met    func(float64) bool
}

var goals = []goal{
	{"ratio broker/empty, clients=1", ">= 0.4", func(v float64) bool { return v >= 0.4 }},
	{"ratio broker/empty, clients=16", ">= 0.6", func(v float64) bool { return v >= 0.6 }},
	{"refusal p99", "< 1ms", func(v float64) bool { return v < 1000 }},
	{"reclaim p99", "< 20ms", func(v float64) bool { return v < 20_000 }},
	{"start to healthy, with leases", "< 500ms", func(v float64) bool { return v < 500 }},
	{"idle CPU, " + whenStarted, "< 0.5% of a core", func(v float64) bool { return v < 0.5 }},
	{"idle CPU, " + whenFilled, "< 0.5% of a core", func(v float64) bool { return v < 0.5 }},
	{"idle CPU, " + whenRestarted, "< 0.5% of a core", func(v float64) bool { return v < 0.5 }},
	{"RSS, " + whenFilled, "< 40 MB", func(v float64) bool { return v < 40 }},
	{"RSS, " + whenRestarted, "< 40 MB", func(v float64) bool { return v < 40 }},
}

// evaluate checks the goals whose figures fs holds.
func evaluate(fs []figure) []Target {
	byName := make(map[string]figure, len(fs))
	for _, f := range fs {
		byName[f.name] = f
	}
	var out []Target
	for _, g := range goals {
		f, ok := byName[g.figure]
		if !ok {
			continue
		}
		out = append(out, Target{Name: g.figure, Want: g.want, Got: f.format(f.v), Met: g.met(f.v)})
	}
	return out
}

func (f figure) format(v float64) string {
	switch f.unit {
	case "µs":
		return fmtUS(v)
	case "ms":
		return fmtMS(v)
	case "":
		return fmt.Sprintf("%.2f", v)
	case "calls/s":
		return fmt.Sprintf("%.0f/s", v)
	case "% of a core":
		return fmt.Sprintf("%.2f%%", v)
	}
	return fmt.Sprintf("%.1f %s", v, f.unit)
}

func (r *Results) evaluate() { r.Targets = evaluate(r.figures()) }

// Summary is the result of several runs: each run, and each figure's
// median and range over them, with the targets checked on the medians.
type Summary struct {
	Runs    []*Results    `json:"runs"`
	Figures []FigureStats `json:"figures"`
	Targets []Target      `json:"targets"`
}

type FigureStats struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func summarise(runs []*Results) *Summary {
	s := &Summary{Runs: runs}
	var order []figure
	values := map[string][]float64{}
	for _, r := range runs {
		for _, f := range r.figures() {
			if _, seen := values[f.name]; !seen {
				order = append(order, f)
			}
			values[f.name] = append(values[f.name], f.v)
		}
	}
	var medians []figure
	for _, f := range order {
		vs := values[f.name]
		slices.Sort(vs)
		m := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			m = (vs[len(vs)/2-1] + m) / 2
		}
		s.Figures = append(s.Figures, FigureStats{Name: f.name, Unit: f.unit, Median: round3(m), Min: vs[0], Max: vs[len(vs)-1], N: len(vs)})
		medians = append(medians, figure{f.name, f.unit, m})
	}
	s.Targets = evaluate(medians)
	return s
}

func writeSummaryTable(w io.Writer, s *Summary) error {
	var b strings.Builder
	writeHeader(&b, s.Runs[0])
	fmt.Fprintf(&b, "median of %d runs [min - max]\n", len(s.Runs))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, f := range s.Figures {
		fig := figure{name: f.Name, unit: f.Unit}
		fmt.Fprintf(tw, "%s\t%s\t[%s - %s]\t\n", f.Name, fig.format(f.Median), fig.format(f.Min), fig.format(f.Max))
	}
	tw.Flush()
	writeTargets(&b, s.Targets)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeHeader(b *strings.Builder, r *Results) {
	d := r.Daemon
	fmt.Fprintf(b, "machine: %s/%s, %d CPUs, %s\n", r.Machine.OS, r.Machine.Arch, r.Machine.CPUs, r.Machine.GoVersion)
	fmt.Fprintf(b, "daemon:  portbrokerd %s pid %d at %s", d.Version, d.PID, d.Addr)
	if d.StateDir != "" {
		fmt.Fprintf(b, ", state in %s", d.StateDir)
	}
	b.WriteString("\n\n")
}

func writeTargets(b *strings.Builder, ts []Target) {
	if len(ts) == 0 {
		return
	}
	b.WriteString("\ntargets\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, t := range ts {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\twant %s\tgot %s\t\n", verdict, t.Name, t.Want, t.Got)
	}
	tw.Flush()
}

func writeJSON(w io.Writer, r any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeTable(w io.Writer, r *Results) error {
	var b strings.Builder
	writeHeader(&b, r)
	if len(r.Throughput) > 0 {
		b.WriteString("throughput: AcquireLease+ReleaseLease (each call counted) vs the same count of grpc.health.v1.Health/Check\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "clients\tbroker calls/s\tp50\tp99\tempty calls/s\tp50\tp99\tratio\tdaemon CPU/call broker\tempty\t")
		for _, l := range r.Throughput {
			fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%.2f\t%s\t%s\t\n", l.Clients,
				l.Broker.CallsPerSec, fmtUS(l.Broker.Latency.P50US), fmtUS(l.Broker.Latency.P99US),
				l.Empty.CallsPerSec, fmtUS(l.Empty.Latency.P50US), fmtUS(l.Empty.Latency.P99US),
				l.Ratio, fmtUS(l.Broker.DaemonCPUPerCallUS), fmtUS(l.Empty.DaemonCPUPerCallUS))
		}
		tw.Flush()
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "clients\tacquire p50\tp99\trelease p50\tp99\tbroker calls\tseconds\t")
		for _, l := range r.Throughput {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%.2f\t\n", l.Clients,
				fmtUS(l.Acquire.P50US), fmtUS(l.Acquire.P99US), fmtUS(l.Release.P50US), fmtUS(l.Release.P99US),
				l.Broker.Calls, l.Broker.Seconds)
		}
		tw.Flush()
		b.WriteString("\n")
	}
	if f := r.Refusal; f != nil {
		fmt.Fprintf(&b, "pool-empty refusal: %d leases held (taken in %.1f s), %d calls: p50 %s  p99 %s  max %s\n",
			f.Held, f.FillSeconds, f.Calls, fmtUS(f.Latency.P50US), fmtUS(f.Latency.P99US), fmtUS(f.Latency.MaxUS))
	}
	if f := r.Reclaim; f != nil {
		fmt.Fprintf(&b, "reclaim after kill -9: %d owners, kill to RECLAIMED event: p50 %s  p99 %s  max %s\n",
			f.Owners, fmtUS(f.Latency.P50US), fmtUS(f.Latency.P99US), fmtUS(f.Latency.MaxUS))
	}
	if f := r.Start; f != nil {
		fmt.Fprintf(&b, "start to healthy: empty store %s", fmtMS(f.EmptyMS))
		if f.Leases > 0 {
			fmt.Fprintf(&b, ", %d leases %s", f.Leases, fmtMS(f.WithLeasesMS))
		}
		b.WriteString("\n")
	}
	if len(r.Resources) > 0 {
		b.WriteString("\ndaemon resources\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "when\tleases\tRSS\tanon\tfiles\tCPU in window\twindow\tof a core\t")
		for _, res := range r.Resources {
			fmt.Fprintf(tw, "%s\t%d\t%.1f MB\t%.1f MB\t%.1f MB\t%.2f s\t%.1f s\t%.2f%%\t\n",
				res.When, res.Leases, res.RSSMB, res.AnonMB, res.FileMB, res.CPUSeconds, res.WindowSeconds, res.CPUPercent)
		}
		tw.Flush()
	}
	writeTargets(&b, r.Targets)
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "skipped: %s\n", s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtUS shows microseconds in the unit that suits them.
func fmtUS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1000:
		return fmt.Sprintf("%.0fµs", v)
	case v < 10_000:
		return fmt.Sprintf("%.2fms", v/1000)
	default:
		return fmt.Sprintf("%.1fms", v/1000)
	}
}

func fmtMS(v float64) string { return fmt.Sprintf("%.1fms", v) }
