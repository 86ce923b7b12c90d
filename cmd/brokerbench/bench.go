package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// What each resource sample is taken after.
const (
	whenStarted   = "after start"
	whenFilled    = "pool filled"
	whenRestarted = "restarted with the leases"
)

// bench takes every figure it can from the daemon cfg names, starting and
// stopping it when cfg names none. Everything it starts is stopped before
// it returns, on error too.
func bench(ctx context.Context, cfg config, log func(string, ...any)) (_ *Results, err error) {
	res := &Results{Machine: Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}}
	self := int32(os.Getpid())

	var d *daemonProc
	var spec daemonSpec
	addr := cfg.addr
	if addr == "" {
		if spec, err = prepare(cfg); err != nil {
			return nil, err
		}
		defer os.RemoveAll(spec.runDir)
		defer os.RemoveAll(spec.stateDir)
		addr = spec.addr
		log("starting %s with state in %s", spec.path, spec.stateDir)
		var startup time.Duration
		if d, startup, err = startDaemon(ctx, spec); err != nil {
			return nil, err
		}
		defer func() {
			if d == nil {
				return
			}
			serr := d.stop()
			switch {
			case err != nil && serr == nil:
				// The daemon's log may say why the run failed.
				err = fmt.Errorf("%w%s", err, d.logTail())
			case err != nil:
				err = fmt.Errorf("%w; and stopping the daemon: %v", err, serr)
			default:
				err = serr
			}
		}()
		res.Start = &Start{EmptyMS: ms(startup)}
		res.Daemon = DaemonInfo{Started: true, Binary: spec.path, StateDir: spec.stateDir}
	}
	res.Daemon.Addr = addr

	ctl, err := dial(ctx, addr, 1)
	if err != nil {
		return nil, err
	}
	defer func() { closeAll(ctl) }()
	st, err := call(ctx, ctl[0].broker.GetStatus, &brokerpb.GetStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	res.Daemon.Version, res.Daemon.PID = st.GetVersion(), int(st.GetPid())
	pid := res.Daemon.PID
	cpu, cpuErr := meter(pid)
	if cpuErr != nil {
		res.Skipped = append(res.Skipped, fmt.Sprintf("daemon RSS and CPU time: %v", cpuErr))
	}
	sample := func(when string, leases int) error {
		if cpuErr != nil {
			return nil
		}
		log("sampling the daemon's RSS and CPU time over %v (%s)", cfg.idle, when)
		r, err := idleSample(ctx, pid, when, leases, cfg.idle)
		if err != nil {
			return err
		}
		res.Resources = append(res.Resources, r)
		return nil
	}
	if err := sample(whenStarted, int(st.GetLeaseCount())); err != nil {
		return nil, err
	}

	for _, n := range cfg.clients {
		log("throughput with %d clients for %v", n, cfg.duration)
		cs, err := dial(ctx, addr, n)
		if err != nil {
			return nil, err
		}
		lv, err := throughput(ctx, cs, cfg.duration, cfg.calls, self, cpu)
		closeAll(cs)
		if err != nil {
			return nil, err
		}
		res.Throughput = append(res.Throughput, lv)
	}

	if cfg.owners > 0 {
		log("starting %d owners for the reclaim figure", cfg.owners)
		lat, err := reclaim(ctx, ctl[0], cfg.owners, log)
		if err != nil {
			return nil, fmt.Errorf("reclaim: %w", err)
		}
		res.Reclaim = &Reclaim{Owners: cfg.owners, Latency: lat}
	} else {
		res.Skipped = append(res.Skipped, "reclaim: --owners 0")
	}

	held, err := fullPool(ctx, cfg, addr, ctl[0], d == nil, res, log)
	if err != nil {
		return nil, err
	}
	if held > 0 {
		if err := sample(whenFilled, held); err != nil {
			return nil, err
		}
	}

	if d == nil {
		res.Skipped = append(res.Skipped, "start to healthy: brokerbench restarts only a daemon it started")
		res.evaluate()
		return res, nil
	}
	if held == 0 {
		res.evaluate()
		return res, nil
	}
	log("restarting the daemon on its %d leases", held)
	if err := d.stop(); err != nil {
		return nil, fmt.Errorf("stop before restart: %w", err)
	}
	// The old connection would only reconnect to the new daemon.
	closeAll(ctl)
	ctl = nil
	var startup time.Duration
	if d, startup, err = startDaemon(ctx, spec); err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	if ctl, err = dial(ctx, addr, 1); err != nil {
		return nil, err
	}
	if st, err = call(ctx, ctl[0].broker.GetStatus, &brokerpb.GetStatusRequest{}); err != nil {
		return nil, fmt.Errorf("status after restart: %w", err)
	}
	if got := int(st.GetLeaseCount()); got != held {
		return nil, fmt.Errorf("restart restored %d leases, want the %d held before", got, held)
	}
	res.Start.Leases, res.Start.WithLeasesMS = held, ms(startup)
	pid = d.pid()
	res.Daemon.PID = pid
	if err := sample(whenRestarted, held); err != nil {
		return nil, err
	}
	res.evaluate()
	return res, nil
}

// prepare makes the private run directory (socket, log) and the state
// directory of a daemon to start, and says how to start it.
func prepare(cfg config) (daemonSpec, error) {
	path, err := findDaemon(cfg.daemonPath)
	if err != nil {
		return daemonSpec{}, err
	}
	runDir, err := os.MkdirTemp("", "brokerbench-")
	if err != nil {
		return daemonSpec{}, fmt.Errorf("run dir: %w", err)
	}
	parent := runDir
	if cfg.stateDir != "" {
		fi, err := os.Stat(cfg.stateDir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", cfg.stateDir)
		}
		if err != nil {
			os.RemoveAll(runDir)
			return daemonSpec{}, fmt.Errorf("--state-dir: %w", err)
		}
		parent = cfg.stateDir
	}
	stateDir, err := os.MkdirTemp(parent, "brokerbench-state-")
	if err != nil {
		os.RemoveAll(runDir)
		return daemonSpec{}, fmt.Errorf("--state-dir: %w", err)
	}
	addr := privateAddr(runDir)
	args := []string{
		"--addr", addr,
		"--state-dir", stateDir,
		"--range", fmt.Sprintf("%d-%d", cfg.rangeStart, cfg.rangeStart+cfg.leases-1),
	}
	return daemonSpec{
		runDir:   runDir,
		stateDir: stateDir,
		path:     path,
		args:     append(args, cfg.daemonArgs...),
		// An empty config dir keeps the user's portbroker.yaml away from
		// the daemon (where the OS takes it from XDG_CONFIG_HOME).
		env:     []string{"XDG_CONFIG_HOME=" + filepath.Join(runDir, "config")},
		addr:    addr,
		logPath: filepath.Join(runDir, "portbrokerd.log"),
	}, nil
}

// fullPool fills the pool with leases owned by brokerbench and times
// refusals. On a live daemon it fills only a pool that has at most
// --leases free ports, and releases what it took before returning. It
// returns how many leases the daemon then holds (0 when skipped).
func fullPool(ctx context.Context, cfg config, addr string, c *client, live bool, res *Results, log func(string, ...any)) (int, error) {
	st, err := call(ctx, c.broker.GetStatus, &brokerpb.GetStatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	if free := int(st.GetPoolFree()); live && free > cfg.leases {
		res.Skipped = append(res.Skipped, fmt.Sprintf("refusal: the live daemon's pool has %d free ports, more than --leases %d", free, cfg.leases))
		return 0, nil
	}
	cs, err := dial(ctx, addr, cfg.fillClients)
	if err != nil {
		return 0, err
	}
	defer closeAll(cs)
	log("filling the pool with up to %d leases", cfg.leases)
	t0 := time.Now()
	ids, err := fill(ctx, cs, cfg.leases, int32(os.Getpid()))
	if live {
		defer func() {
			log("releasing %d leases", len(ids))
			releaseAll(context.WithoutCancel(ctx), cs, ids)
		}()
	}
	if err != nil {
		return 0, err
	}
	fillTime := time.Since(t0)
	if st, err = call(ctx, c.broker.GetStatus, &brokerpb.GetStatusRequest{}); err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	held := int(st.GetLeaseCount())
	log("filled: %d leases in %v; %d pool ports free", len(ids), fillTime.Round(time.Millisecond), st.GetPoolFree())
	lat, err := refusals(ctx, c, cfg.refusals, int32(os.Getpid()))
	if err != nil {
		return 0, fmt.Errorf("refusal with %d leases held: %w", held, err)
	}
	res.Refusal = &Refusal{Held: held, Calls: cfg.refusals, Latency: lat, FillSeconds: round3(fillTime.Seconds())}
	return held, nil
}

// meter reads the daemon's CPU time, if this OS lets brokerbench read it.
func meter(pid int) (cpuMeter, error) {
	if _, err := sampleProc(pid); err != nil {
		return nil, err
	}
	return func() (time.Duration, bool) {
		s, err := sampleProc(pid)
		return s.cpu, err == nil
	}, nil
}

// procSample is a process's resident set and CPU time so far.
type procSample struct {
	rss, anon, file, shmem int64 // bytes
	cpu                    time.Duration
}

func mb(n int64) float64 { return round3(float64(n) / (1 << 20)) }

// idleSample measures the daemon over window without calling it.
func idleSample(ctx context.Context, pid int, when string, leases int, window time.Duration) (Resources, error) {
	s0, err := sampleProc(pid)
	if err != nil {
		return Resources{}, err
	}
	t0 := time.Now()
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return Resources{}, ctx.Err()
	case <-timer.C:
	}
	s1, err := sampleProc(pid)
	if err != nil {
		return Resources{}, err
	}
	elapsed := time.Since(t0)
	cpu := s1.cpu - s0.cpu
	return Resources{
		When:          when,
		Leases:        leases,
		RSSMB:         mb(s1.rss),
		AnonMB:        mb(s1.anon),
		FileMB:        mb(s1.file + s1.shmem),
		WindowSeconds: round3(elapsed.Seconds()),
		CPUSeconds:    round3(cpu.Seconds()),
		CPUPercent:    round3(100 * cpu.Seconds() / elapsed.Seconds()),
	}, nil
}
