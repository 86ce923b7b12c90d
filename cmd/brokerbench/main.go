// Command brokerbench measures a portbrokerd against the floor of its own
// transport: it starts a private daemon (or targets a live one with
// --addr), runs AcquireLease+ReleaseLease pairs and the same count of empty
// grpc.health.v1 calls over the same kind of connection, and reports the
// ratio, together with pool-empty refusal latency, reclaim latency after
// kill -9 of owners, start-to-healthy time with a full store, and the
// daemon's RSS and CPU time.
//
// Usage:
//
//	brokerbench [--quick] [--daemon PATH | --addr ADDR] [--state-dir DIR] [-o table|json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	// A re-executed brokerbench serving as a lease owner does nothing else.
	if isOwnerHelper() {
		ownerMain()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the resolved command line.
type config struct {
	daemonPath  string
	daemonArgs  []string
	addr        string
	stateDir    string
	output      string
	quick       bool
	duration    time.Duration
	calls       int
	clients     []int
	leases      int
	rangeStart  int
	refusals    int
	owners      int
	idle        time.Duration
	fillClients int
	runs        int
}

// Defaults for a full run, and the quick run's overrides.
var (
	full  = config{duration: 8 * time.Second, refusals: 5000, owners: 100, idle: 5 * time.Second}
	quick = config{duration: 2 * time.Second, refusals: 500, owners: 50, idle: 2 * time.Second}
)

type usageError struct{ error }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("brokerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var clients string
	fs.StringVar(&cfg.daemonPath, "daemon", "", "portbrokerd binary to start (default: next to brokerbench, else on PATH)")
	fs.Func("daemon-arg", "extra argument for the started daemon, such as --log-level=warn (repeatable)", func(s string) error {
		cfg.daemonArgs = append(cfg.daemonArgs, s)
		return nil
	})
	fs.StringVar(&cfg.addr, "addr", "", "measure the live daemon at this address instead of starting one")
	fs.StringVar(&cfg.stateDir, "state-dir", "", "directory to hold the started daemon's state (a fresh subdirectory is made and removed); pick a tmpfs or a disk dir (default: the temp dir)")
	fs.StringVar(&cfg.output, "o", "table", "output: table or json")
	fs.BoolVar(&cfg.quick, "quick", false, "short run, about 30 s")
	fs.DurationVar(&cfg.duration, "duration", full.duration, "time for each broker throughput phase (quick: 2s)")
	fs.IntVar(&cfg.calls, "calls", 0, "cap on broker calls in each throughput phase; 0 means only --duration bounds it")
	fs.StringVar(&clients, "clients", "1,16", "concurrent clients for the throughput phases, each on its own connection")
	fs.IntVar(&cfg.leases, "leases", 10000, "pool size of the started daemon and leases held for the refusal, restart and RSS figures")
	fs.IntVar(&cfg.rangeStart, "range-start", 20000, "first port of the started daemon's pool")
	fs.IntVar(&cfg.refusals, "refusals", full.refusals, "pool-empty refusals to time (quick: 500)")
	fs.IntVar(&cfg.owners, "owners", full.owners, "owner processes to kill -9 for the reclaim figure; 0 skips it (quick: 50)")
	fs.DurationVar(&cfg.idle, "idle", full.idle, "window over which idle CPU is measured (quick: 2s)")
	fs.IntVar(&cfg.fillClients, "fill-clients", 16, "connections that fill the pool")
	fs.IntVar(&cfg.runs, "runs", 1, "repeat the whole run, each on a fresh daemon, and report each figure's median and range")
	if err := fs.Parse(args); err != nil {
		return config{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return config{}, usageError{fmt.Errorf("unexpected argument %q: brokerbench takes flags only", fs.Arg(0))}
	}
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			cfg.duration = quick.duration
		}
		if !set["refusals"] {
			cfg.refusals = quick.refusals
		}
		if !set["owners"] {
			cfg.owners = quick.owners
		}
		if !set["idle"] {
			cfg.idle = quick.idle
		}
	}
	var err error
	if cfg.clients, err = parseClients(clients); err != nil {
		return config{}, usageError{err}
	}
	if err := cfg.check(); err != nil {
		return config{}, usageError{err}
	}
	return cfg, nil
}

func parseClients(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("--clients: %q: want a comma-separated list of counts from 1 to 256, such as 1,16", part)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c config) check() error {
	switch {
	case c.output != "table" && c.output != "json":
		return fmt.Errorf("-o: %q: want table or json", c.output)
	case c.addr != "" && (c.daemonPath != "" || c.stateDir != "" || len(c.daemonArgs) > 0):
		return errors.New("--addr targets a live daemon: it excludes --daemon, --daemon-arg and --state-dir")
	case c.duration < 100*time.Millisecond || c.duration > time.Hour:
		return fmt.Errorf("--duration: %v: want from 100ms to 1h", c.duration)
	case c.calls < 0 || c.calls > 100_000_000:
		return fmt.Errorf("--calls: %d: want from 0 to 100000000", c.calls)
	case c.leases < 1 || c.leases > 16384:
		return fmt.Errorf("--leases: %d: want from 1 to 16384 (the daemon's default per-user limit)", c.leases)
	case c.rangeStart < 1024 || c.rangeStart+c.leases-1 > 65535:
		return fmt.Errorf("--range-start: %d: the pool %d-%d must lie within 1024-65535", c.rangeStart, c.rangeStart, c.rangeStart+c.leases-1)
	case c.refusals < 1 || c.refusals > 10_000_000:
		return fmt.Errorf("--refusals: %d: want from 1 to 10000000", c.refusals)
	case c.owners < 0 || c.owners > 2000:
		return fmt.Errorf("--owners: %d: want from 0 to 2000", c.owners)
	case c.idle < 100*time.Millisecond || c.idle > time.Hour:
		return fmt.Errorf("--idle: %v: want from 100ms to 1h", c.idle)
	case c.fillClients < 1 || c.fillClients > 256:
		return fmt.Errorf("--fill-clients: %d: want from 1 to 256", c.fillClients)
	case c.runs < 1 || c.runs > 100:
		return fmt.Errorf("--runs: %d: want from 1 to 100", c.runs)
	}
	return nil
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "brokerbench: %v\n", err)
		return 2
	}
	log := progress(stderr)
	var runs []*Results
	for i := range cfg.runs {
		if cfg.runs > 1 {
			log("run %d of %d", i+1, cfg.runs)
		}
		res, err := bench(ctx, cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "brokerbench: %v\n", err)
			return 1
		}
		runs = append(runs, res)
	}
	switch {
	case cfg.runs > 1 && cfg.output == "json":
		err = writeJSON(stdout, summarise(runs))
	case cfg.runs > 1:
		err = writeSummaryTable(stdout, summarise(runs))
	case cfg.output == "json":
		err = writeJSON(stdout, runs[0])
	default:
		err = writeTable(stdout, runs[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "brokerbench: write results: %v\n", err)
		return 1
	}
	return 0
}

// progress returns a logger of the run's steps.
func progress(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(w, "brokerbench: "+format+"\n", args...)
	}
}

// findDaemon resolves the portbrokerd binary: the one asked for, else the
// one next to brokerbench, else the one on PATH.
func findDaemon(path string) (string, error) {
	if path != "" {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("--daemon: %w", err)
		}
		if fi.IsDir() {
			return "", fmt.Errorf("--daemon: %s is a directory, want the portbrokerd binary", path)
		}
		return filepath.Abs(path)
	}
	name := "portbrokerd"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
			return beside, nil
		}
	}
	found, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find portbrokerd: not next to brokerbench nor on PATH; build it (go build ./cmd/portbrokerd) and pass --daemon PATH, or pass --addr to target a live daemon")
	}
	return found, nil
}
