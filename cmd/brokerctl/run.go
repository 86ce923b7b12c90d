package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
)

// releaseTimeout bounds the release after the child exits.
const releaseTimeout = 5 * time.Second

// runSpec is what brokerctl run was asked to start.
type runSpec struct {
	name, namespace string
	port            int
	strict, reclaim bool
	ttl             time.Duration
	listenFD        bool
	argv            []string
	// protocol is TCP when zero (brokerctl up sets it per service).
	protocol client.Protocol
}

// acquireOpts are the lease options for owner, started by launcher (0:
// none), at port (0: the one asked for).
func (s *runSpec) acquireOpts(owner, launcher, port int, strict bool) []client.AcquireOption {
	opts := []client.AcquireOption{client.WithNamespace(s.namespace), client.WithOwnerPID(owner)}
	if launcher != 0 {
		opts = append(opts, client.WithLauncherPID(launcher))
	}
	if port != 0 {
		opts = append(opts, client.WithPort(port))
	}
	if strict {
		opts = append(opts, client.WithStrict())
	}
	if s.ttl > 0 {
		opts = append(opts, client.WithTTL(s.ttl))
	}
	if s.reclaim {
		opts = append(opts, client.WithReclaim())
	}
	if s.protocol != 0 {
		opts = append(opts, client.WithProtocol(s.protocol))
	}
	return opts
}

// childArgv is argv with {port} replaced by port.
func childArgv(argv []string, port int) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, "{port}", strconv.Itoa(port))
	}
	return out
}

// portEnv is the environment a child gets its port in.
func portEnv(env []string, port int) []string {
	out := withoutEnv(env, "PORT", "PORTBROKER_PORT")
	p := strconv.Itoa(port)
	return append(out, "PORT="+p, "PORTBROKER_PORT="+p)
}

// withoutEnv drops the variables named from env.
func withoutEnv(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			if name == n || (runtime.GOOS == "windows" && strings.EqualFold(name, n)) {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func (c *cli) runCmd() *cobra.Command {
	var spec runSpec
	cmd := &cobra.Command{
		Use:   "run NAME [flags] -- CMD [ARGS...]",
		Short: "Lease a port for a command and run it there",
		Long: `Lease a port for NAME and run CMD on it. The child gets the port as PORT
and PORTBROKER_PORT, and {port} in ARGS is replaced by it. The lease
belongs to the child (brokerctl is recorded as its launcher), so the broker
reclaims it when the child exits, and stops the child's tree if brokerctl
run itself dies without stopping it.

The child runs in its own process group (a job object on Windows);
SIGINT and SIGTERM (Ctrl-C, Ctrl-Break) are passed on to it. When it exits,
brokerctl releases the lease and exits with its code (128+N when signal N
ended it).

With --listen-fd (Unix), brokerctl binds the port itself and hands the
socket to the child as fd 3 with LISTEN_FDS=1, LISTEN_PID and
LISTEN_FDNAMES=NAME, systemd's socket-activation protocol (uvicorn --fd 3,
gunicorn, Go's activation libraries), so no one can take the port between
the lease and the bind.`,
		Example: `  brokerctl run backend --port 8000 -- python3 -m http.server {port}
  brokerctl run api --listen-fd -- uvicorn app:app --fd 3`,
		Args: func(cmd *cobra.Command, args []string) error {
			// NAME then the command, with "--" between them when the
			// command has flags of its own.
			if dash := cmd.ArgsLenAtDash(); len(args) < 2 || dash == 0 || dash > 1 {
				return errors.New("want NAME -- CMD [ARGS...]")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&spec.port, "port", 0, "preferred port (default: the configured or last port of NAME, else any)")
	f.BoolVar(&spec.strict, "strict", false, "fail instead of falling back to another port when --port is not free")
	f.DurationVar(&spec.ttl, "ttl", 0, "lease with a TTL, renewed while the child runs (default: as long as the child)")
	f.StringVar(&spec.namespace, "namespace", "default", "namespace of the lease name")
	f.BoolVar(&spec.reclaim, "reclaim", false, "stop an orphan of an earlier run of NAME that still holds the port")
	f.BoolVar(&spec.listenFD, "listen-fd", false, "bind the port and pass the socket as fd 3 (systemd's LISTEN_FDS protocol)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		switch {
		case spec.port < 0 || spec.port > math.MaxUint16:
			return usageErrorf("--port: must be from 0 to 65535, not %d", spec.port)
		case spec.strict && spec.port == 0:
			return usageErrorf("--strict needs --port")
		case spec.ttl < 0:
			return usageErrorf("--ttl: must not be negative, not %v", spec.ttl)
		case spec.listenFD && runtime.GOOS == "windows":
			return usageErrorf("--listen-fd: Windows has no way to hand a socket to a child this way; let the child bind PORT")
		}
		spec.name, spec.argv = args[0], args[1:]
		return c.runChild(cmd.Context(), &spec)
	})
	return cmd
}

// child is a started command.
type child interface {
	// signal passes sig on to the child's process group.
	signal(sig os.Signal) error
	// wait waits for the child and returns its exit code, 128+N for a
	// child ended by signal N.
	wait() (int, error)
}

// runChild leases a port for spec's command, runs it, and ends with its
// exit code.
func (c *cli) runChild(ctx context.Context, spec *runSpec) error {
	timeout, err := c.timeout()
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	cl, err := c.connect(dialCtx)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()

	// Signals are the child's to act on once it runs, so they must not
	// cut the lease's keepalive short: the lease lives until the child
	// exits. Until then, an interrupt or the --timeout aborts the start.
	leaseCtx, endLease := context.WithCancelCause(context.WithoutCancel(ctx))
	defer endLease(nil)
	errTimeout := fmt.Errorf("no lease within --timeout %v", timeout)
	stopOnInterrupt := context.AfterFunc(ctx, func() { endLease(context.Cause(ctx)) })
	timer := time.AfterFunc(timeout, func() { endLease(errTimeout) })

	// Catch signals before the child exists so that none is lost between
	// its start and the forwarding loop.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	ch, lease, err := c.startChild(leaseCtx, cl, spec)
	stopOnInterrupt()
	timer.Stop()
	if err != nil {
		switch cause := context.Cause(leaseCtx); {
		case errors.Is(cause, errTimeout):
			err = cause
		case cause != nil:
			err = fmt.Errorf("interrupted before the child started: %w", cause)
		}
		return fmt.Errorf("run %s: %w", spec.name, err)
	}
	if lease.FallbackReason != "" {
		asked := "its usual port"
		if spec.port != 0 {
			asked = "port " + strconv.Itoa(spec.port)
		}
		fmt.Fprintf(c.stderr, "brokerctl: %s: %s is busy (%s); using %d\n", spec.name, asked, lease.FallbackReason, lease.Port)
	}

	type result struct {
		code int
		err  error
	}
	exited := make(chan result, 1)
	go func() {
		code, err := ch.wait()
		exited <- result{code, err}
	}()
	lost := lease.Done()
	for {
		select {
		case sig := <-sigs:
			if err := ch.signal(sig); err != nil {
				fmt.Fprintf(c.stderr, "brokerctl: %s: pass on %v: %v\n", spec.name, sig, err)
			}
		case <-lost:
			fmt.Fprintf(c.stderr, "brokerctl: %s: lease on port %d ended: %v\n", spec.name, lease.Port, lease.Err())
			lost = nil
		case r := <-exited:
			if owner := followedOwner(ctx, cl, lease); owner != 0 {
				// The service daemonized: the broker moved the lease to the
				// process holding the port. Stay its launcher, so that if
				// brokerctl is killed the broker stops the service.
				fmt.Fprintf(c.stderr, "brokerctl: %s: the service left pid %d holding port %d; staying as its launcher until it exits\n", spec.name, owner, lease.Port)
				superviseFollower(ctx, cl, lease, owner, sigs, c.stderr, spec.name)
				return &exitCode{code: r.code}
			}
			if err := releaseAfterExit(ctx, lease); err != nil {
				fmt.Fprintf(c.stderr, "brokerctl: %s: release lease %s: %v\n", spec.name, lease.ID, err)
			}
			if r.err != nil {
				return fmt.Errorf("run %s: %w", spec.name, r.err)
			}
			return &exitCode{code: r.code}
		}
	}
}

// followWait bounds how long brokerctl waits, after its child exits, for
// the broker to reclaim the lease or move it to a process the child left
// holding the port.
const followWait = 5 * time.Second

// followedOwner returns the PID the broker moved lease to after its owner
// exited, or 0 when the broker reclaimed it (or did neither in time).
func followedOwner(ctx context.Context, cl *client.Client, lease *client.Lease) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followWait)
	defer cancel()
	for {
		leases, err := cl.List(ctx, lease.Namespace)
		if err != nil {
			return 0
		}
		found := false
		for _, l := range leases {
			if l.ID == lease.ID {
				found = true
				if l.OwnerPID != lease.OwnerPID {
					return l.OwnerPID
				}
			}
		}
		if !found {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// superviseFollower waits until the lease that followed a daemonized
// service ends, passing signals on to the service meanwhile.
func superviseFollower(ctx context.Context, cl *client.Client, lease *client.Lease, owner int, sigs <-chan os.Signal, stderr io.Writer, name string) {
	ctx = context.WithoutCancel(ctx)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			if p, err := os.FindProcess(owner); err == nil {
				if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
					fmt.Fprintf(stderr, "brokerctl: %s: pass on %v to pid %d: %v\n", name, sig, owner, err)
				}
			}
		case <-tick.C:
			leases, err := cl.List(ctx, lease.Namespace)
			if err != nil {
				fmt.Fprintf(stderr, "brokerctl: %s: %v\n", name, err)
				continue
			}
			if !slices.ContainsFunc(leases, func(l *client.Lease) bool { return l.ID == lease.ID }) {
				return
			}
		}
	}
}

// releaseAfterExit releases the lease of an exited child. The broker sees
// the owner exit too and may be ending the lease at the same moment
// (ErrConflict) or have ended it (ErrNotFound): the same outcome.
func releaseAfterExit(ctx context.Context, lease *client.Lease) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	for {
		err := lease.Release(ctx)
		if !errors.Is(err, client.ErrConflict) {
			if errors.Is(err, client.ErrNotFound) {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// releaseQuietly releases a lease whose start failed; the failure is what
// gets reported.
func releaseQuietly(ctx context.Context, lease *client.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = lease.Release(ctx)
}
