//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/platform/unix"
)

// BenchmarkDaemon makes brokerbench's calls against a daemon served in
// this process, so that one CPU profile (go test -cpuprofile) shows both
// ends of the same calls over the same socket. One op is one
// AcquireLease+ReleaseLease pair, or one empty call. The store lives in
// $BROKERBENCH_STATE_DIR when set (to compare a tmpfs with a disk), else
// in the test's temp dir.
func BenchmarkDaemon(b *testing.B) {
	addr := serveDaemon(b)
	owner := int32(os.Getpid())
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("pair/clients=%d", n), func(b *testing.B) {
			split(b, addr, n, 2, func(ctx context.Context, i int, c *client) error {
				_, _, err := pair(ctx, c, fmt.Sprintf("bench-%d", i), owner)
				return err
			})
		})
		b.Run(fmt.Sprintf("empty/clients=%d", n), func(b *testing.B) {
			split(b, addr, n, 1, func(ctx context.Context, _ int, c *client) error {
				_, err := empty(ctx, c)
				return err
			})
		})
	}
}

// BenchmarkBrokerPair is BenchmarkDaemon's pair without gRPC: the broker
// of a daemon on this host (its store, the real bind probe and owner
// lookup, its logging) called in process, so that what an acquire costs
// below the transport shows on its own. One op is one Acquire and one
// Release by one caller.
func BenchmarkBrokerPair(b *testing.B) {
	cfg := daemonConfig(b)
	d, err := daemon.New(b.Context(), cfg, unix.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	br := d.Broker()
	caller := broker.Caller{PID: os.Getpid(), User: strconv.Itoa(os.Getuid())}
	ctx := b.Context()
	i := 0
	for b.Loop() {
		i++
		res, err := br.Acquire(ctx, broker.AcquireRequest{Caller: caller, Name: fmt.Sprintf("bench-%d", i%64), OwnerPID: os.Getpid()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := br.Release(ctx, caller, res.Lease.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDaemonRestart is the daemon's start on a store of 10,000
// leases whose owner (this process) lives: open, verify and load the
// store, check every owner, restore the broker, listen. It leaves out the
// exec and the first health check that brokerbench's figure includes.
func BenchmarkDaemonRestart(b *testing.B) {
	cfg := daemonConfig(b)
	ctx, cancel := context.WithCancel(b.Context())
	d, err := daemon.New(ctx, cfg, unix.New(), nil)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, nil) }()
	cs, err := dial(ctx, d.Addr(), 16)
	if err != nil {
		b.Fatal(err)
	}
	ids, err := fill(ctx, cs, 10000, int32(os.Getpid()))
	closeAll(cs)
	cancel()
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		b.Fatal(err)
	}
	if len(ids) != 10000 {
		b.Fatalf("filled %d leases, want 10000", len(ids))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for b.Loop() {
		d, err := daemon.New(b.Context(), cfg, unix.New(), log)
		if err != nil {
			b.Fatal(err)
		}
		if n := d.Broker().Status().Leases; n != 10000 {
			b.Fatalf("restored %d leases, want 10000", n)
		}
		d.Close()
	}
}

// split runs b.N ops spread over n clients, each on its own connection,
// and reports calls per second.
func split(b *testing.B, addr string, n, callsPerOp int, op func(ctx context.Context, i int, c *client) error) {
	cs, err := dial(b.Context(), addr, n)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAll(cs)
	var next atomic.Int64
	total := int64(b.N)
	b.ResetTimer()
	_, err = parallel(b.Context(), cs, func(ctx context.Context, i int, c *client) error {
		for next.Add(1) <= total {
			if err := op(ctx, i, c); err != nil {
				return err
			}
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(callsPerOp*b.N)/b.Elapsed().Seconds(), "calls/s")
}

// daemonConfig is the config of a daemon for a benchmark, with its
// socket and store in the benchmark's temp dir, or the store in
// $BROKERBENCH_STATE_DIR when set.
func daemonConfig(b *testing.B) daemon.Config {
	cfg, err := daemon.Settings{Range: "20000-29999"}.Resolve()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cfg.Addr = "unix://" + filepath.Join(dir, "s.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	if parent := os.Getenv("BROKERBENCH_STATE_DIR"); parent != "" {
		if cfg.StateDir, err = os.MkdirTemp(parent, "brokerbench-state-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(cfg.StateDir) })
	}
	return cfg
}

// serveDaemon serves a daemon on this host in the background until the
// benchmark ends, logging as portbrokerd does by default (text, info).
func serveDaemon(b *testing.B) string {
	cfg := daemonConfig(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, unix.New(), log)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, nil) }()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})
	return d.Addr()
}
