package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xwin "golang.org/x/sys/windows"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portbroker/portbroker/client"
	pbdaemon "github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/internal/ipc"
	pbwin "github.com/portbroker/portbroker/platform/windows"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// These tests run under Wine in CI (.ci/wine), which has neither AF_UNIX
// nor a working named-pipe Accept, nor a go command for clienttest to build
// portbrokerd with: the daemon runs in the test process, on loopback TCP.

// failAfter bounds waits for what the daemon or a child does by itself;
// it only matters when a test fails.
const failAfter = 30 * time.Second

// childEnv makes the test binary the child of brokerctl run: "report"
// prints what it was given (pid=, PORT=, PORTBROKER_PORT=, args=, then
// "ready"), waits for the end of its stdin and exits with $HELPER_EXIT.
// init checks it before TestMain, whose helper modes are Unix only; a
// brokerctl process of the tests ($BROKERCTL_TEST_CLI) passes it on.
const childEnv = "BROKERCTL_TEST_WINDOWS_CHILD"

func init() {
	if os.Getenv(cliEnv) == "1" || os.Getenv(childEnv) != "report" {
		return
	}
	fmt.Printf("pid=%d\nPORT=%s\nPORTBROKER_PORT=%s\nargs=%s\nready\n",
		os.Getpid(), os.Getenv("PORT"), os.Getenv("PORTBROKER_PORT"), strings.Join(os.Args[1:], " "))
	io.Copy(io.Discard, os.Stdin)
	code, _ := strconv.Atoi(os.Getenv("HELPER_EXIT"))
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer for the daemon's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// realDaemon runs a daemon in this process on loopback TCP, with a state
// dir and a port range of its own, until the test ends, and returns its
// address and a client to it. Its token file is in the environment, so
// brokerctl processes started by the test find it too.
func realDaemon(t *testing.T) (string, *client.Client) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv(ipc.EnvTokenFile, filepath.Join(state, ipc.TokenFile))
	t.Setenv(ipc.EnvCertFile, filepath.Join(state, ipc.CertFile))
	first := 20000 + 200*rand.IntN(60)
	cfg, err := pbdaemon.Settings{
		Addr:     "tcp://127.0.0.1:0",
		StateDir: state,
		Range:    fmt.Sprintf("%d-%d", first, first+199),
		Reclaim:  pbdaemon.ReclaimSettings{Grace: "2s"},
	}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	d, err := pbdaemon.New(context.Background(), cfg, pbwin.New(), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	c, err := client.New(t.Context(), client.WithAddr(d.Addr()))
	if err != nil {
		t.Fatalf("New(%s): %v", d.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return d.Addr(), c
}

// report reads a "report" child's lines up to "ready".
func report(t *testing.T, out *bufio.Reader) map[string]string {
	t.Helper()
	got := map[string]string{}
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("the child's report ended early: %v; got %v", err, got)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "ready" {
			return got
		}
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
}

// openChild opens the running process pid so that its PID stays its own,
// and kills it when the test ends, in case it outlived the test.
func openChild(t *testing.T, pid int) xwin.Handle {
	t.Helper()
	h, err := xwin.OpenProcess(xwin.SYNCHRONIZE|xwin.PROCESS_TERMINATE|xwin.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		t.Fatalf("open child %d: %v", pid, err)
	}
	t.Cleanup(func() {
		xwin.TerminateProcess(h, 1)
		xwin.CloseHandle(h)
	})
	return h
}

// exited reports whether the process h exited within d.
func exited(t *testing.T, h xwin.Handle, d time.Duration) bool {
	t.Helper()
	ev, err := xwin.WaitForSingleObject(h, uint32(d/time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return ev == xwin.WAIT_OBJECT_0
}

// The child sees its port, owns the lease with brokerctl as its launcher
// while it runs, and brokerctl releases the lease and exits with the
// child's code once it exits.
func TestRunChildOwnsLease(t *testing.T) {
	addr, c := realDaemon(t)
	for _, code := range []int{0, 7} {
		t.Run(fmt.Sprintf("exit%d", code), func(t *testing.T) {
			cmd := cliProcess([]string{childEnv + "=report", "HELPER_EXIT=" + strconv.Itoa(code)},
				"--addr", addr, "run", "web", "--", os.Args[0], "--arg={port}", "x{port}y")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				stdin.Close()
				cmd.Process.Kill()
				cmd.Wait()
			})
			got := report(t, bufio.NewReader(stdout))
			childPID, err := strconv.Atoi(got["pid"])
			if err != nil {
				t.Fatalf("child said pid=%q", got["pid"])
			}
			openChild(t, childPID)
			port, err := strconv.Atoi(got["PORT"])
			if err != nil || port <= 0 {
				t.Fatalf("child saw PORT=%q", got["PORT"])
			}
			if got["PORTBROKER_PORT"] != got["PORT"] {
				t.Errorf("PORTBROKER_PORT=%q, want %d", got["PORTBROKER_PORT"], port)
			}
			if want := fmt.Sprintf("--arg=%d x%dy", port, port); got["args"] != want {
				t.Errorf("child args %q, want %q", got["args"], want)
			}

			r := brokerctl(t, "--addr", addr, "leases", "-o", "json")
			var list brokerpb.ListLeasesResponse
			if err := protojson.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil {
				t.Fatalf("brokerctl leases: exit %d, %v; stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
			}
			var web *brokerpb.Lease
			for _, l := range list.GetLeases() {
				if l.GetName() == "web" {
					web = l
				}
			}
			if web == nil || int(web.GetPort()) != port || int(web.GetOwnerPid()) != childPID || int(web.GetLauncherPid()) != cmd.Process.Pid {
				t.Errorf("brokerctl leases shows %v; want web on port %d owned by the child %d, launched by brokerctl %d", web, port, childPID, cmd.Process.Pid)
			}

			stdin.Close()
			cmd.Wait()
			if exit := cmd.ProcessState.ExitCode(); exit != code {
				t.Errorf("brokerctl exit code %d, want the child's %d; stderr %q", exit, code, stderr.String())
			}
			if l := leaseNamed(t, c, "web"); l != nil {
				t.Errorf("lease %s on port %d left after the child exited", l.ID, l.Port)
			}
		})
	}
}

// The hand-over is one TransferLease: someone asking for the port at that
// moment is refused, and the child runs on the port brokerctl leased,
// under the same lease.
func TestRunHandOverLeavesNoGap(t *testing.T) {
	addr, c := realDaemon(t)
	t.Setenv(childEnv, "report")
	var (
		own      *client.Lease
		thiefErr error
	)
	testHookHandOver = func(port int) {
		own = leaseNamed(t, c, "web")
		_, thiefErr = c.Acquire(t.Context(), "thief", client.WithPort(port), client.WithStrict())
	}
	t.Cleanup(func() { testHookHandOver = nil })

	r := brokerctl(t, "--addr", addr, "run", "web", "--", os.Args[0])
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if own == nil {
		t.Fatal("no lease of web during the hand-over")
	}
	if !errors.Is(thiefErr, client.ErrPortHeld) {
		t.Errorf("taking port %d during the hand-over: %v; want ErrPortHeld", own.Port, thiefErr)
	}
	got := report(t, bufio.NewReader(strings.NewReader(r.stdout)))
	if got["PORT"] != strconv.Itoa(own.Port) {
		t.Errorf("child saw PORT=%q, want the leased %d", got["PORT"], own.Port)
	}
	if l := leaseNamed(t, c, "thief"); l != nil {
		t.Errorf("the taker got lease %s", l.ID)
	}
	if l := leaseNamed(t, c, "web"); l != nil {
		t.Errorf("lease %s of web left after the child exited", l.ID)
	}
}

// A preferred port that is busy falls back to another one, which the child
// gets, and brokerctl says so.
func TestRunFallback(t *testing.T) {
	addr, _ := realDaemon(t)
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().(*net.TCPAddr).Port
	cmd := cliProcess([]string{childEnv + "=report"}, "--addr", addr, "run", "backend", "--port", strconv.Itoa(busy), "--", os.Args[0])
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("brokerctl run: %v; stderr %q", err, stderr.String())
	}
	got := report(t, bufio.NewReader(bytes.NewReader(out)))
	want := fmt.Sprintf("brokerctl: backend: port %d is busy (", busy)
	if s := stderr.String(); !strings.HasPrefix(s, want) || !strings.HasSuffix(s, "; using "+got["PORT"]+"\n") || got["PORT"] == strconv.Itoa(busy) {
		t.Errorf("stderr %q with PORT=%s; want %q...\"; using PORT\"", s, got["PORT"], want)
	}
}

func TestRunMissingCommand(t *testing.T) {
	addr, c := realDaemon(t)
	r := brokerctl(t, "--addr", addr, "run", "web", "--", filepath.Join(t.TempDir(), "no-such-command"))
	if r.code != 127 || !strings.Contains(r.stderr, "no-such-command") {
		t.Errorf("exit %d, stderr %q; want 127 naming the command", r.code, r.stderr)
	}
	if l := leaseNamed(t, c, "web"); l != nil {
		t.Errorf("lease %s taken for a command that never ran", l.ID)
	}
}

// Killing brokerctl run ends the child, and the daemon reclaims the
// child's lease.
func TestRunKilledLeavesNothing(t *testing.T) {
	addr, c := realDaemon(t)
	watchCtx, stopWatch := context.WithTimeout(t.Context(), failAfter)
	defer stopWatch()
	next, stop := iter.Pull2(c.Watch(watchCtx, "", client.WithExisting()))
	defer stop()
	// A first lease makes sure the watch is open before the run starts.
	marker, err := c.Acquire(t.Context(), "marker")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err, _ := next(); err != nil || ev.Lease.ID != marker.ID {
		t.Fatalf("first event %+v, %v; want the marker", ev, err)
	}

	cmd := cliProcess([]string{childEnv + "=report"}, "--addr", addr, "run", "svc", "--", os.Args[0])
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := report(t, bufio.NewReader(stdout))
	childPID, err := strconv.Atoi(got["pid"])
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said pid=%q", got["pid"])
	}
	child := openChild(t, childPID)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !exited(t, child, failAfter) {
		t.Fatalf("child %d still runs %v after brokerctl was killed", childPID, failAfter)
	}
	for {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("no reclaim of svc: %v", err)
		}
		if ev.Lease.Name == "svc" && ev.Type == client.EventReclaimed {
			if ev.Lease.OwnerPID != childPID {
				t.Errorf("reclaimed lease owned by %d, want the child %d", ev.Lease.OwnerPID, childPID)
			}
			break
		}
	}
	if l := leaseNamed(t, c, "svc"); l != nil {
		t.Errorf("lease %s left after the reclaim", l.ID)
	}
}
