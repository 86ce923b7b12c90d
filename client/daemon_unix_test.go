//go:build unix

package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// failAfter bounds waits for something the daemon does by itself; it only
// matters when the test fails.
const failAfter = 20 * time.Second

// realClient starts a daemon for the test and connects to it.
func realClient(t *testing.T) (*client.Client, *clienttest.Daemon) {
	t.Helper()
	d := clienttest.Start(t, clienttest.Binary(t))
	c, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatalf("New(%s): %v", d.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, d
}

// leaseByName returns the daemon's live lease named name, or nil.
func leaseByName(t *testing.T, c *client.Client, name string) *client.Lease {
	t.Helper()
	leases, err := c.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, l := range leases {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func TestDaemonAcquireRelease(t *testing.T) {
	c, _ := realClient(t)
	lease, err := c.Acquire(t.Context(), "web")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	got := leaseByName(t, c, "web")
	if got == nil || got.ID != lease.ID || got.Port != lease.Port || got.OwnerPID != os.Getpid() {
		t.Fatalf("listed lease = %+v; want %s on port %d owned by this process (%d)", got, lease.ID, lease.Port, os.Getpid())
	}
	again, err := c.Acquire(t.Context(), "web")
	if err != nil || again.ID != lease.ID || !again.Existing {
		t.Errorf("second Acquire by the same owner = %+v, %v; want the same lease marked existing", again, err)
	}

	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := leaseByName(t, c, "web"); got != nil {
		t.Errorf("lease %s still listed after Release", got.ID)
	}
	select {
	case <-lease.Done():
	default:
		t.Fatal("Done not closed after Release")
	}
	if !errors.Is(lease.Err(), client.ErrReleased) {
		t.Errorf("Err after Release = %v, want ErrReleased", lease.Err())
	}
}

// A TTL lease outlives its TTL while the client keeps it alive. The wait is
// the subject of the test, not a synchronisation: the lease must survive
// more than two TTLs.
func TestDaemonKeepalive(t *testing.T) {
	c, _ := realClient(t)
	lease, err := c.Acquire(t.Context(), "ttl", client.WithTTL(time.Second))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := leaseByName(t, c, "ttl"); got == nil || got.ID != lease.ID {
		t.Fatalf("lease with a 1s TTL gone after 2.5s of keepalive (listed: %+v)", got)
	}
	if err := lease.Err(); err != nil {
		t.Errorf("Err while kept alive = %v, want nil", err)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
}

// The keepalive ends with the context given to Acquire, and the daemon
// then lets the lease expire.
func TestDaemonKeepaliveEndsWithContext(t *testing.T) {
	c, _ := realClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	lease, err := c.Acquire(ctx, "ttl", client.WithTTL(time.Second))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	watchCtx, stopWatch := context.WithTimeout(t.Context(), failAfter)
	defer stopWatch()
	// The watch starts with the live lease, so it is open before the
	// lease can expire.
	next, stop := iter.Pull2(c.Watch(watchCtx, "", client.WithExisting()))
	defer stop()
	if ev, err, _ := next(); err != nil || ev.Lease.ID != lease.ID {
		t.Fatalf("first event %+v, %v; want the lease acquired", ev, err)
	}
	cancel()
	select {
	case <-lease.Done():
	case <-time.After(failAfter):
		t.Fatal("Done not closed after the Acquire context ended")
	}
	if !errors.Is(lease.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", lease.Err())
	}
	for {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("no expiry event for %s: %v", lease.ID, err)
		}
		if ev.Lease.ID == lease.ID && ev.Type == client.EventExpired {
			return
		}
	}
}

// A lease the daemon drops is reported through Done and Err.
func TestDaemonLeaseLost(t *testing.T) {
	c, _ := realClient(t)
	lease, err := c.Acquire(t.Context(), "lost", client.WithTTL(time.Second))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// Another party frees the port (no kill: the owner is this test).
	if err := c.Release(t.Context(), lease.ID); err != nil {
		t.Fatalf("Release by id: %v", err)
	}
	select {
	case <-lease.Done():
	case <-time.After(failAfter):
		t.Fatal("Done not closed after the daemon dropped the lease")
	}
	if err := lease.Err(); !errors.Is(err, client.ErrLeaseLost) || !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Err = %v; want it to match ErrLeaseLost and ErrNotFound", err)
	}
}

func TestDaemonListen(t *testing.T) {
	c, _ := realClient(t)
	ln, err := c.Listen(t.Context(), "api")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	l, ok := ln.(*client.Listener)
	if !ok {
		t.Fatalf("Listen returned %T, want *client.Listener", ln)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if lease := l.Lease(); lease.Port != port || lease.Name != "api" {
		t.Fatalf("listening on %d under lease %+v; want the leased port", port, lease)
	}

	accepted := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_, err = io.WriteString(conn, "hi\n")
			conn.Close()
		}
		accepted <- err
	}()
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("dial the leased port: %v", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || line != "hi\n" {
		t.Errorf("read %q, %v from the listener; want hi", line, err)
	}
	if err := <-accepted; err != nil {
		t.Errorf("Accept: %v", err)
	}

	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := leaseByName(t, c, "api"); got != nil {
		t.Errorf("lease %s still listed after the listener closed", got.ID)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDaemonListenStrictHeld(t *testing.T) {
	c, _ := realClient(t)
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	_, err = c.Listen(t.Context(), "api", client.WithPort(port), client.WithStrict())
	var phe *client.PortHeldError
	if !errors.As(err, &phe) || !errors.Is(err, client.ErrPortHeld) || phe.Port != port {
		t.Fatalf("Listen on a held port = %v; want a PortHeldError for port %d", err, port)
	}
	if got := leaseByName(t, c, "api"); got != nil {
		t.Errorf("lease %s left behind by a failed Listen", got.ID)
	}
}

// startOwner starts a helper process to own leases and returns its PID.
func startOwner(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

func TestDaemonTypedErrors(t *testing.T) {
	c, _ := realClient(t)
	other := startOwner(t)
	held, err := c.Acquire(t.Context(), "held", client.WithOwnerPID(other))
	if err != nil {
		t.Fatalf("Acquire for pid %d: %v", other, err)
	}
	tests := []struct {
		name  string
		call  func() error
		want  error
		check func(t *testing.T, err error)
	}{
		{
			name: "name held by another owner",
			call: func() error { _, err := c.Acquire(t.Context(), "held"); return err },
			want: client.ErrNameTaken,
		},
		{
			name: "strict port leased to another",
			call: func() error {
				_, err := c.Acquire(t.Context(), "other", client.WithPort(held.Port), client.WithStrict())
				return err
			},
			want: client.ErrPortHeld,
			check: func(t *testing.T, err error) {
				var phe *client.PortHeldError
				if !errors.As(err, &phe) || phe.Port != held.Port || phe.HolderPID != other {
					t.Errorf("PortHeldError = %+v; want port %d held by pid %d", phe, held.Port, other)
				}
				// The lease's id and name come only in the error details.
				if phe.LeaseID != held.ID || phe.LeaseName != "held" {
					t.Errorf("PortHeldError lease = %q %q; want %q held (from the ErrorInfo)", phe.LeaseID, phe.LeaseName, held.ID)
				}
				if reason, _ := client.ErrorReason(err); reason != "PORT_HELD" {
					t.Errorf("ErrorReason = %q; want PORT_HELD", reason)
				}
			},
		},
		{
			name: "unknown lease",
			call: func() error { return c.Release(t.Context(), "no-such-lease") },
			want: client.ErrNotFound,
		},
		{
			name: "empty name",
			call: func() error { _, err := c.Acquire(t.Context(), ""); return err },
			want: client.ErrInvalidArgument,
			check: func(t *testing.T, err error) {
				var iae *client.InvalidArgumentError
				if !errors.As(err, &iae) || iae.Field != "name" {
					t.Errorf("InvalidArgumentError = %+v; want field name", iae)
				}
			},
		},
		{
			name: "TTL under the minimum",
			call: func() error { _, err := c.Acquire(t.Context(), "short", client.WithTTL(time.Millisecond)); return err },
			want: client.ErrInvalidArgument,
			check: func(t *testing.T, err error) {
				var iae *client.InvalidArgumentError
				if !errors.As(err, &iae) || iae.Field != "ttl" {
					t.Errorf("InvalidArgumentError = %+v; want field ttl", iae)
				}
				// What grpcurl prints: the status keeps its BadRequest.
				var fields []string
				for _, d := range status.Convert(err).Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							fields = append(fields, v.GetField()+": "+v.GetDescription())
						}
					}
				}
				if len(fields) != 1 || !strings.HasPrefix(fields[0], "ttl: ") {
					t.Errorf("BadRequest violations = %q; want one for ttl", fields)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v; want %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

// privateDefaults points the per-user default address and state dir at a
// fresh directory, so that auto-start serves this test alone.
func privateDefaults(t *testing.T) (addr, stateDir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	runtime := filepath.Join(dir, "run")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("HOME", dir)
	t.Setenv("TMPDIR", dir)
	t.Setenv(client.EnvAddr, "")
	t.Setenv(client.EnvStateDir, "")
	t.Setenv("PORTBROKER_CONFIG", "")
	t.Setenv(client.EnvDaemon, clienttest.Binary(t))
	return "unix://" + filepath.Join(runtime, "portbroker", "portbroker.sock"), filepath.Join(dir, "state", "portbroker")
}

// stopAutoStarted stops a daemon this test did not start as a child and
// waits until it is gone.
func stopAutoStarted(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Errorf("stop auto-started portbrokerd pid %d: %v", pid, err)
		return
	}
	deadline := time.Now().Add(failAfter)
	for {
		pids, err := clienttest.Processes(clienttest.Binary(t))
		if err != nil {
			t.Fatal(err)
		}
		if !contains(pids, pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("auto-started portbrokerd pid %d ignored SIGTERM for %v", pid, failAfter)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

func TestAutoStart(t *testing.T) {
	addr, stateDir := privateDefaults(t)
	c, err := client.New(t.Context(), client.WithAutoStart(true))
	if err != nil {
		t.Fatalf("New with auto-start: %v", err)
	}
	defer c.Close()
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	defer stopAutoStarted(t, st.PID)
	if c.Addr() != addr {
		t.Errorf("connected to %s, want the default %s", c.Addr(), addr)
	}
	if want := filepath.Join(stateDir, "leases.db"); st.StatePath != want {
		t.Errorf("daemon state %s, want the default %s", st.StatePath, want)
	}
	if _, err := os.Stat(filepath.Join(stateDir, client.DaemonLogFile)); err != nil {
		t.Errorf("no daemon log in the state dir: %v", err)
	}
}

func TestNoAutoStart(t *testing.T) {
	privateDefaults(t)
	tests := []struct {
		name string
		opts []client.Option
	}{
		{"off by default", nil},
		{"another address", []client.Option{client.WithAutoStart(true), client.WithAddr(clienttest.DeadAddr(t))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(t.Context(), tt.opts...)
			if !errors.Is(err, client.ErrUnavailable) {
				t.Errorf("New = %v; want ErrUnavailable", err)
			}
			pids, err := clienttest.Processes(clienttest.Binary(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(pids) != 0 {
				t.Errorf("portbrokerd started anyway: pids %v", pids)
				for _, pid := range pids {
					stopAutoStarted(t, pid)
				}
			}
		})
	}
}

func TestAutoStartNoBinary(t *testing.T) {
	privateDefaults(t)
	t.Setenv(client.EnvDaemon, filepath.Join(t.TempDir(), "missing"))
	_, err := client.New(t.Context(), client.WithAutoStart(true))
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), client.EnvDaemon) {
		t.Errorf("New = %v; want ErrUnavailable naming %s", err, client.EnvDaemon)
	}
}
