// Command brokerbench measures a portbrokerd against the floor of its own
// transport: it starts a private daemon (or targets a live one with
// --addr), runs AcquireLease+ReleaseLease pairs and the same count of empty
// grpc.health.v1 calls over the same kind of connection, and reports the
// ratio, together with pool-empty refusal latency, reclaim latency after
// kill -9 of owners, start-to-healthy time with a full store, and the
// daemon's RSS and CPU time.
//
// Two other modes run one scenario each: --versus puts AcquireLease side
// by side with empty calls and with Google's portserver (--portserver
// PATH to its portserver.py), and --churn runs clients churning leases for
// shared owners, then kills every owner and times each lease's reclaim.
//
// Usage:
//
//	brokerbench [--quick] [--daemon PATH | --addr ADDR] [--state-dir DIR] [-o table|json]
//	brokerbench --versus [--portserver PATH] [--clients 1,8,16] [--state-dir DIR]
//	brokerbench --churn [--churn-for 30s] [--churn-clients 32] [--churn-owners 8]
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

	versus       bool
	versusCalls  int
	portserver   string
	python       string
	churn        bool
	churnFor     time.Duration
	churnClients int
	churnOwners  int
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
	fs.BoolVar(&cfg.versus, "versus", false, "run only the side-by-side figure: AcquireLease vs empty calls vs portserver (with --portserver)")
	fs.IntVar(&cfg.versusCalls, "versus-calls", 4000, "calls of each kind per client count in --versus")
	fs.StringVar(&cfg.portserver, "portserver", os.Getenv("BROKERBENCH_PORTSERVER"), "path to Google's portserver.py for --versus (env BROKERBENCH_PORTSERVER); empty skips it")
	fs.StringVar(&cfg.python, "python", "python3", "python to run --portserver with (it needs psutil)")
	fs.BoolVar(&cfg.churn, "churn", false, "run only the kill scenario: clients churn leases for shared owners, then every owner is killed")
	fs.DurationVar(&cfg.churnFor, "churn-for", 30*time.Second, "how long --churn churns")
	fs.IntVar(&cfg.churnClients, "churn-clients", 32, "clients in --churn, each on its own connection")
	fs.IntVar(&cfg.churnOwners, "churn-owners", 8, "owner processes the --churn clients share")
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
	case c.versus && c.churn:
		return errors.New("--versus and --churn are separate runs: pick one")
	case (c.versus || c.churn) && c.runs != 1:
		return errors.New("--runs repeats the full run only; run --versus or --churn again instead")
	case c.versusCalls < versusRound || c.versusCalls > 9000:
		// portserver hands each call a port from its 10,000 and never
		// takes one back while the owner lives.
		return fmt.Errorf("--versus-calls: %d: want from %d to 9000", c.versusCalls, versusRound)
	case c.portserver != "" && runtime.GOOS != "linux":
		return errors.New("--portserver: runs only on Linux (portserver listens on an abstract unix socket)")
	case c.churnFor < time.Second || c.churnFor > time.Hour:
		return fmt.Errorf("--churn-for: %v: want from 1s to 1h", c.churnFor)
	case c.churnClients < 1 || c.churnClients > 256:
		return fmt.Errorf("--churn-clients: %d: want from 1 to 256", c.churnClients)
	case c.churnOwners < 1 || c.churnOwners > 256:
		return fmt.Errorf("--churn-owners: %d: want from 1 to 256", c.churnOwners)
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
	if cfg.versus || cfg.churn {
		return runMode(ctx, cfg, stdout, stderr, log)
	}
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

// runMode runs --versus or --churn and writes its figure.
func runMode(ctx context.Context, cfg config, stdout, stderr io.Writer, log func(string, ...any)) int {
	var res any
	var err error
	if cfg.versus {
		if cfg.portserver == "" {
			log("no --portserver given: measuring the broker against empty calls only")
		} else if _, serr := os.Stat(cfg.portserver); serr != nil {
			fmt.Fprintf(stderr, "brokerbench: --portserver: %v\n", serr)
			return 2
		}
		var v *Versus
		v, err = versus(ctx, cfg, log)
		res = v
		if err == nil && cfg.output == "table" {
			err = writeVersus(stdout, v)
		}
	} else {
		var c *Churn
		c, err = churn(ctx, cfg, log)
		res = c
		if err == nil && cfg.output == "table" {
			err = writeChurn(stdout, c)
		}
	}
	if err == nil && cfg.output == "json" {
		err = writeJSON(stdout, res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "brokerbench: %v\n", err)
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
