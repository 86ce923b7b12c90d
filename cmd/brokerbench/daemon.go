package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Bounds on the daemon's life cycle: how long it may take to answer its
// first health check, and to stop after SIGTERM (its own grace for
// in-flight calls is 10 s).
const (
	healthyTimeout = 30 * time.Second
	stopTimeout    = 15 * time.Second
)

// daemonSpec is how to start a private portbrokerd.
type daemonSpec struct {
	// runDir holds the socket and the log; stateDir the store. Both are
	// brokerbench's to remove.
	runDir, stateDir string
	path             string
	args             []string
	env              []string // added to brokerbench's own, less PORTBROKER_*
	addr             string
	logPath          string
}

// daemonProc is a portbrokerd that brokerbench started and must stop.
type daemonProc struct {
	spec   daemonSpec
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed once the process has been reaped
	err    error         // the exit status, valid once exited is closed
}

// startDaemon starts the daemon and waits until its health check answers
// SERVING. It returns the time from just before the exec to that answer.
func startDaemon(ctx context.Context, spec daemonSpec) (*daemonProc, time.Duration, error) {
	logf, err := os.OpenFile(spec.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("daemon log: %w", err)
	}
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(daemonEnv(os.Environ()), spec.env...)
	cmd.SysProcAttr = daemonAttr()
	d := &daemonProc{spec: spec, cmd: cmd, log: logf, exited: make(chan struct{})}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, 0, fmt.Errorf("start %s: %w", spec.path, err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	if err := waitHealthy(ctx, spec.addr, d.exited, healthyTimeout); err != nil {
		d.stop()
		return nil, 0, fmt.Errorf("daemon %s: %w%s", spec.path, err, d.logTail())
	}
	return d, time.Since(t0), nil
}

// daemonEnv keeps the user's PORTBROKER_* settings away from the private
// daemon: its flags alone decide where it serves and what it holds.
func daemonEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(strings.ToUpper(kv), "PORTBROKER_") {
			out = append(out, kv)
		}
	}
	return out
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

// stop asks the daemon to stop, waits for it, and forces it after
// stopTimeout. It is safe to call more than once.
func (d *daemonProc) stop() error {
	defer d.log.Close()
	select {
	case <-d.exited:
		return d.exitErr()
	default:
	}
	if err := terminate(d.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.cmd.Process.Kill()
	}
	select {
	case <-d.exited:
		return d.exitErr()
	case <-time.After(stopTimeout):
	}
	d.cmd.Process.Kill()
	<-d.exited
	return fmt.Errorf("daemon pid %d did not stop within %v of SIGTERM; killed it", d.pid(), stopTimeout)
}

func (d *daemonProc) exitErr() error {
	if d.err != nil {
		return fmt.Errorf("daemon pid %d: %w%s", d.pid(), d.err, d.logTail())
	}
	return nil
}

// logTail is the end of the daemon's log, to explain a failure.
func (d *daemonProc) logTail() string {
	f, err := os.Open(d.spec.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return "\ndaemon log " + d.spec.logPath + ":\n" + s
}

// waitHealthy polls the daemon's health until it answers SERVING. The
// connection retries every millisecond or two, so the time it returns at
// is within that of the daemon's first answer.
func waitHealthy(ctx context.Context, addr string, exited <-chan struct{}, timeout time.Duration) error {
	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		return err
	}
	opts = append(opts, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: time.Millisecond, Multiplier: 1.2, Jitter: 0.1, MaxDelay: 2 * time.Millisecond},
		MinConnectTimeout: time.Second,
	}))
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return fmt.Errorf("health client for %s: %w", addr, err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		actx, acancel := context.WithTimeout(ctx, 50*time.Millisecond)
		res, err := hc.Check(actx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		acancel()
		switch {
		case err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			return nil
		case err == nil:
			last = fmt.Errorf("health is %v", res.GetStatus())
		default:
			last = err
		}
		select {
		case <-exited:
			return errors.New("exited before it answered a health check")
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("not healthy within %v at %s: %v", timeout, addr, last)
		default:
		}
		if err == nil {
			// Answering but not yet serving: ask again shortly.
			time.Sleep(time.Millisecond)
		}
	}
}
