package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

const (
	// EnvDaemon names the environment variable that names the daemon
	// binary auto-start runs.
	EnvDaemon = "PORTBROKER_DAEMON"
	// EnvStateDir is the daemon's state dir setting; auto-start logs there.
	EnvStateDir = "PORTBROKER_STATE_DIR"
	// DaemonLogFile is the file in the state dir an auto-started daemon
	// writes its output to.
	DaemonLogFile = "portbrokerd.log"
	// AutoStartTimeout bounds the wait for a started daemon to be healthy.
	AutoStartTimeout = 5 * time.Second
)

// maxLogSize is where an auto-started daemon's log starts over, so that a
// log nobody rotates stays small.
const maxLogSize = 8 << 20

// startDaemon starts portbrokerd detached to serve addr and waits until it
// reports healthy. A daemon that exits saying another runs (exit 3) lost a
// race with another client's daemon, so the wait goes on for the winner;
// any other exit fails at once with the daemon's last log line, its error.
func startDaemon(ctx context.Context, addr string) error {
	fail := func(format string, args ...any) error {
		return &rpcError{kind: ErrUnavailable, msg: fmt.Sprintf("no portbrokerd at %s, and starting one failed: ", addr) + fmt.Sprintf(format, args...)}
	}
	bin, err := daemonBinary()
	if err != nil {
		return fail("%v", err)
	}
	dir := os.Getenv(EnvStateDir)
	if dir == "" {
		if dir, err = ipc.DefaultStateDir(); err != nil {
			return fail("%v", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail("state dir: %v", err)
	}
	logPath := filepath.Join(dir, DaemonLogFile)
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLogSize {
		flags |= os.O_TRUNC
	}
	logFile, err := os.OpenFile(logPath, flags, 0o600)
	if err != nil {
		return fail("log file: %v", err)
	}
	// The address is passed explicitly so that a config file naming
	// another one cannot leave this client waiting in the wrong place.
	cmd := exec.Command(bin, "--addr", addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Not the caller's working directory, which the daemon would pin.
	cmd.Dir = dir
	cmd.SysProcAttr = detached()
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return fail("%v", err)
	}
	// The daemon outlives this process by design, so nothing here stops it.
	// Waiting only reaps it: at once when it loses a race, else whenever it
	// exits while this process still runs.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	ctx, cancel := context.WithTimeout(ctx, AutoStartTimeout)
	defer cancel()
	if err := waitHealthy(ctx, addr, exited); err != nil {
		var gone *daemonExited
		if errors.As(err, &gone) {
			// The daemon's own last words (its error) say what to do.
			msg := fmt.Sprintf("the portbrokerd it started exited (%v)", gone.err)
			if line := lastLine(logPath); line != "" {
				msg += ": " + line
			}
			return fail("%s (log: %s)", msg, logPath)
		}
		msg := fmt.Sprintf("started %s (pid %d) but it did not report healthy within %v: %v", bin, cmd.Process.Pid, AutoStartTimeout, err)
		if line := lastLine(logPath); line != "" {
			msg += "; its log ends: " + line
		}
		return fail("%s (log: %s)", msg, logPath)
	}
	return nil
}

// exitAlreadyRunning is portbrokerd's exit status when another daemon
// already serves the address or state dir.
const exitAlreadyRunning = 3

// daemonExited is a started daemon's exit for any reason but losing a
// race to another daemon: waiting longer would not help.
type daemonExited struct{ err error }

func (e *daemonExited) Error() string { return "it exited: " + e.err.Error() }

// daemonBinary finds portbrokerd: $PORTBROKER_DAEMON, else next to the
// running executable (where go install and release archives put both),
// else on PATH.
func daemonBinary() (string, error) {
	if p := os.Getenv(EnvDaemon); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvDaemon, p, err)
		}
		return filepath.Abs(path)
	}
	name := "portbrokerd"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("portbrokerd is neither next to %s nor on PATH; install it or set %s: %w", exe, EnvDaemon, err)
	}
	return path, nil
}

// waitHealthy polls the daemon's health with backoff until it serves or
// ctx ends.
func waitHealthy(ctx context.Context, addr string, exited <-chan error) error {
	delay := 20 * time.Millisecond
	var exitErr error
	for {
		err := checkHealth(ctx, addr)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if exitErr != nil {
				return fmt.Errorf("it exited (%v) and no other daemon answered", exitErr)
			}
			return err
		case exitErr = <-exited:
			if exitErr == nil {
				exitErr = errors.New("exit status 0")
			}
			var ee *exec.ExitError
			if !errors.As(exitErr, &ee) || ee.ExitCode() != exitAlreadyRunning {
				// A bad config or a broken install: no daemon is coming.
				if checkHealth(ctx, addr) == nil {
					return nil
				}
				return &daemonExited{err: exitErr}
			}
			exited = nil // a racing client's daemon will come up
		case <-time.After(delay):
			delay = min(2*delay, 250*time.Millisecond)
		}
	}
}

// checkHealth asks the daemon's gRPC health service whether the broker
// serves, on a fresh connection so that no reconnect backoff delays it.
func checkHealth(ctx context.Context, addr string) error {
	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: brokerpb.BrokerService_ServiceDesc.ServiceName})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health is %v", s)
	}
	return nil
}

// lastLine returns the last non-empty line of the file at path.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		if _, err := f.Seek(-tail, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
