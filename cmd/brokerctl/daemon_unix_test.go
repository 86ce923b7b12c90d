//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// failAfter bounds waits for what the daemon or a child does by itself;
// it only matters when a test fails.
const failAfter = 30 * time.Second

// realDaemon starts a daemon for the test, with a short grace so that
// stops that reach the forced step do not drag on, and a client to it.
func realDaemon(t *testing.T) (*clienttest.Daemon, *client.Client) {
	t.Helper()
	d := clienttest.Start(t, clienttest.Binary(t), "--grace", "2s")
	c, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatalf("New(%s): %v", d.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

func TestRunChild(t *testing.T) {
	d, c := realDaemon(t)
	tests := []struct {
		name     string
		mode     string
		exit     string
		wantCode int
	}{
		{name: "success", mode: "env", exit: "0", wantCode: 0},
		{name: "failure", mode: "env", exit: "7", wantCode: 7},
		{name: "signalled", mode: "selfkill", wantCode: 128 + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := cliProcess([]string{helperEnv + "=" + tt.mode, "HELPER_EXIT=" + tt.exit},
				"--addr", d.Addr, "run", "web", "--", os.Args[0], "--arg={port}", "x{port}y")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, _ := cmd.Output()
			if got := cmd.ProcessState.ExitCode(); got != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr %q", got, tt.wantCode, stderr.String())
			}
			if l := leaseNamed(t, c, "web"); l != nil {
				t.Errorf("lease %s on port %d left after the child exited", l.ID, l.Port)
			}
			if tt.mode != "env" {
				return
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				k, v, _ := strings.Cut(line, "=")
				got[k] = v
			}
			port := got["PORT"]
			if n, err := strconv.Atoi(port); err != nil || n <= 0 {
				t.Fatalf("child saw PORT=%q; output:\n%s", port, out)
			}
			if got["PORTBROKER_PORT"] != port {
				t.Errorf("PORTBROKER_PORT=%q, want %s", got["PORTBROKER_PORT"], port)
			}
			if want := "--arg=" + port + " x" + port + "y"; got["args"] != want {
				t.Errorf("child args %q, want %q", got["args"], want)
			}
		})
	}
}

// The lease belongs to the child, names brokerctl as its launcher, and an
// interrupt reaches the child, whose signal becomes brokerctl's exit code.
func TestRunLeaseAndInterrupt(t *testing.T) {
	d, c := realDaemon(t)
	cmd := cliProcess([]string{helperEnv + "=listen"}, "--addr", d.Addr, "run", "web", "--", os.Args[0])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no line from the child: %v", err)
	}
	f := ints(t, line)
	childPID, port := f[0], f[1]
	killStray(t, childPID)

	l := leaseNamed(t, c, "web")
	if l == nil || l.Port != port || l.OwnerPID != childPID || l.LauncherPID != cmd.Process.Pid {
		t.Fatalf("lease %+v; want port %d owned by the child %d, launched by brokerctl %d", l, port, childPID, cmd.Process.Pid)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got, want := cmd.ProcessState.ExitCode(), 128+int(syscall.SIGINT); got != want {
		t.Errorf("exit code %d, want %d (the child's SIGINT)", got, want)
	}
	if alive(childPID) {
		t.Errorf("child %d survived the interrupt", childPID)
	}
	if l := leaseNamed(t, c, "web"); l != nil {
		t.Errorf("lease %s left after brokerctl run ended", l.ID)
	}
}

// A brokerctl run killed outright leaves no child or grandchild: the
// daemon sees its launcher die and stops the orphaned tree.
func TestRunKilledLeavesNothing(t *testing.T) {
	d, c := realDaemon(t)
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

	cmd := cliProcess([]string{helperEnv + "=listen", "HELPER_GRANDCHILD=1"}, "--addr", d.Addr, "run", "svc", "--", os.Args[0])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no line from the child: %v", err)
	}
	pids := ints(t, line)
	child, grandchild := pids[0], pids[2]
	killStray(t, child, grandchild)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("no reclaim of svc: %v", err)
		}
		if ev.Lease.Name == "svc" && ev.Type == client.EventReclaimed {
			break
		}
	}
	waitGone(t, child, grandchild)
	if l := leaseNamed(t, c, "svc"); l != nil {
		t.Errorf("lease %s left after the reclaim", l.ID)
	}
}

func TestRunListenFD(t *testing.T) {
	d, c := realDaemon(t)
	cmd := cliProcess([]string{helperEnv + "=listen-fd"}, "--addr", d.Addr, "run", "api", "--listen-fd", "--", os.Args[0])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Wait()
		t.Fatalf("no line from the child: %v; stderr %q", err, stderr.String())
	}
	var port int
	var fdName string
	if _, err := fmt.Sscanf(line, "ready %d %s", &port, &fdName); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	if l := leaseNamed(t, c, "api"); l == nil || l.Port != port || fdName != "api" {
		t.Errorf("socket on port %d named %q, lease %+v; want the leased port, named api", port, fdName, l)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("dial %d: %v", port, err)
	}
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || greeting != "hello from fd 3\n" {
		t.Errorf("greeting %q, %v", greeting, err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0; stderr %q", code, stderr.String())
	}
}

func TestRunFallback(t *testing.T) {
	d, _ := realDaemon(t)
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().(*net.TCPAddr).Port
	cmd := cliProcess([]string{helperEnv + "=env"}, "--addr", d.Addr, "run", "backend", "--port", strconv.Itoa(busy), "--", os.Args[0])
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("brokerctl run: %v; stderr %q", err, stderr.String())
	}
	var port string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "PORT="); ok {
			port = v
		}
	}
	want := fmt.Sprintf("brokerctl: backend: port %d is busy (", busy)
	if !strings.HasPrefix(stderr.String(), want) || !strings.HasSuffix(stderr.String(), "; using "+port+"\n") || port == strconv.Itoa(busy) {
		t.Errorf("stderr %q with PORT=%s; want %q...\"; using PORT\"", stderr.String(), port, want)
	}
}

func TestRunCommandNotFound(t *testing.T) {
	d, c := realDaemon(t)
	cmd := cliProcess(nil, "--addr", d.Addr, "run", "web", "--", filepath.Join(t.TempDir(), "no-such-command"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 127 || !strings.Contains(stderr.String(), "no-such-command") {
		t.Errorf("exit %d, stderr %q; want 127 naming the command", code, stderr.String())
	}
	if l := leaseNamed(t, c, "web"); l != nil {
		t.Errorf("lease %s taken for a command that never ran", l.ID)
	}
}

func TestWhoAndReclaim(t *testing.T) {
	d, _ := realDaemon(t)
	stray := helperChild(t, "listen")
	f := ints(t, stray.line)
	pid, port := f[0], strconv.Itoa(f[1])

	r := brokerctl(t, "--addr", d.Addr, "who", port)
	for _, want := range []string{
		"port " + port + "/tcp\n",
		"holder:    pid " + strconv.Itoa(pid) + " (",
		fmt.Sprintf("parent:   pid %d, alive", os.Getpid()),
		"binds:     no: in use",
		"reclaim " + port + " --kill",
	} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("who: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = brokerctl(t, "--addr", d.Addr, "who", port, "-o", "json")
	var resp brokerpb.InspectPortResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.GetHolders()) != 1 || resp.GetHolders()[0].GetPid() != int32(pid) {
		t.Errorf("who -o json: %v; holders %v, want pid %d", err, resp.GetHolders(), pid)
	}

	r = brokerctl(t, "--addr", d.Addr, "reclaim", port)
	if r.code != 1 || !strings.Contains(r.stderr, "port "+port+" is not free") {
		t.Errorf("reclaim without --kill: exit %d, stderr %q; want 1, not free", r.code, r.stderr)
	}
	if !alive(pid) {
		t.Fatal("reclaim without --kill stopped the holder")
	}
	r = brokerctl(t, "--addr", d.Addr, "reclaim", port, "--kill")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("pid %d (", pid)) || !strings.HasSuffix(r.stdout, "port "+port+" is free\n") {
		t.Errorf("reclaim --kill: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	stray.Wait()
	if ws := stray.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() {
		t.Errorf("holder ended with %v, want a signal from the reclaim", stray.ProcessState)
	}
}

func TestDoctor(t *testing.T) {
	d, c := realDaemon(t)
	// An orphan: its parent exited after starting it.
	maker := helperChild(t, "orphan-maker")
	f := ints(t, maker.line)
	orphan, orphanPort := f[0], strconv.Itoa(f[1])
	killStray(t, orphan)
	maker.Wait()
	// A holder whose parent, this test, is alive.
	stray := helperChild(t, "listen")
	f = ints(t, stray.line)
	strayPID, strayPort := f[0], strconv.Itoa(f[1])
	free := freePort(t)
	leased, err := c.Acquire(t.Context(), "leased")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "portbroker.yaml")
	if err := os.WriteFile(config, []byte("services:\n  api:\n    port: "+free+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "free port", args: []string{free}, code: 0, stdout: []string{"=> ok: port " + free + " is free"}},
		{
			name: "configured services", args: []string{"--config", config}, code: 0,
			stdout: []string{"api:\nport " + free + "/tcp\n", "=> ok: port " + free + " is free"},
		},
		{name: "configured name", args: []string{"api", "--config", config}, code: 0, stdout: []string{"port " + free + "/tcp"}},
		{
			name: "lease name", args: []string{"leased"}, code: 0,
			stdout: []string{fmt.Sprintf("port %d is free to bind; it is leased to default/leased", leased.Port)},
		},
		{name: "unknown name", args: []string{"nope", "--config", config}, code: 1, stderr: `"nope" is neither a port`},
		{
			name: "unleased holder", args: []string{orphanPort}, code: 1,
			stdout: []string{"lease:     none", fmt.Sprintf("holder:    pid %d (", orphan), "an orphan", "=> NOT USABLE: port " + orphanPort + " is in use by pid"},
			stderr: "port " + orphanPort + " is not usable",
		},
		{
			name: "fix refuses a non-orphan", args: []string{strayPort, "--fix"}, code: 1,
			stdout: []string{fmt.Sprintf("held by pid %d (", strayPID), "which is not an orphan; stop it yourself or run brokerctl reclaim " + strayPort + " --kill"},
		},
		{
			name: "two bad ports", args: []string{orphanPort, strayPort}, code: 1,
			stderr: "2 of 2 ports are not usable: " + orphanPort + ", " + strayPort,
		},
		{
			name: "fix stops the orphan", args: []string{orphanPort, free, "--fix"}, code: 0,
			stdout: []string{fmt.Sprintf("--fix: pid %d (", orphan), "=> ok: port " + orphanPort + " is free", "=> ok: port " + free + " is free"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := brokerctl(t, append([]string{"--addr", d.Addr, "doctor"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
	if alive(orphan) {
		t.Errorf("orphan %d runs after doctor --fix", orphan)
	}
	if !alive(strayPID) {
		t.Errorf("doctor --fix stopped %d, which is not an orphan", strayPID)
	}
}

func TestDoctorJSON(t *testing.T) {
	d, _ := realDaemon(t)
	stray := helperChild(t, "listen")
	f := ints(t, stray.line)
	free := freePort(t)
	r := brokerctl(t, "--addr", d.Addr, "doctor", strconv.Itoa(f[1]), free, "-o", "json")
	if r.code != 1 {
		t.Errorf("exit %d, want 1: a port is in use", r.code)
	}
	var got struct {
		Ports []struct {
			Port    int             `json:"port"`
			Usable  bool            `json:"usable"`
			Inspect json.RawMessage `json:"inspect"`
		} `json:"ports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Ports) != 2 {
		t.Fatalf("output: %v\n%s", err, r.stdout)
	}
	var inspect brokerpb.InspectPortResponse
	if err := protojson.Unmarshal(got.Ports[0].Inspect, &inspect); err != nil {
		t.Fatalf("inspect is not an InspectPortResponse: %v", err)
	}
	hs := inspect.GetHolders()
	if got.Ports[0].Usable || len(hs) != 1 || hs[0].GetPid() != int32(f[0]) || !got.Ports[1].Usable {
		t.Errorf("ports %+v, holders %v; want the first held by %d, the second usable", got.Ports, hs, f[0])
	}
	if !strings.Contains(string(got.Ports[0].Inspect), `"bind_detail"`) {
		t.Errorf("inspect lacks proto field names: %s", got.Ports[0].Inspect)
	}
}

// freePort returns a port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// privateDefaults is an environment whose per-user default address and
// state dir are private to the test.
func privateDefaults(t *testing.T) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	return []string{
		"HOME=" + dir, "TMPDIR=" + dir, "XDG_RUNTIME_DIR=" + run,
		"XDG_STATE_HOME=" + filepath.Join(dir, "state"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"PORTBROKER_ADDR=", "PORTBROKER_STATE_DIR=", "PORTBROKER_CONFIG=", "PORTBROKER_NO_AUTOSTART=",
		"PORTBROKER_DAEMON=" + clienttest.Binary(t),
	}
}

func TestAutoStartRace(t *testing.T) {
	env := privateDefaults(t)
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 2 {
		cmd := cliProcess(env, "status", "-o", "json")
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var pids []int32
	for i, cmd := range cmds {
		err := cmd.Wait()
		var st brokerpb.GetStatusResponse
		if err != nil || protojson.Unmarshal([]byte(outs[i].String()), &st) != nil {
			t.Errorf("brokerctl status %d: %v\n%s", i, err, outs[i])
			continue
		}
		pids = append(pids, st.GetPid())
	}
	if len(pids) != 2 || pids[0] != pids[1] {
		t.Fatalf("the clients talked to daemons %v, want one and the same", pids)
	}
	winner := int(pids[0])
	t.Cleanup(func() { stopDaemons(t, []int{winner}) })
	// A losing daemon gives up once the winner's store lock outlasts its
	// wait; it must exit on its own.
	running, err := clienttest.Processes(clienttest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, slices.DeleteFunc(running, func(pid int) bool { return pid == winner })...)
	if running, err = clienttest.Processes(clienttest.Binary(t)); err != nil || !slices.Equal(running, []int{winner}) {
		t.Errorf("daemons running: %v, %v; want only %d", running, err, winner)
	}
}

func TestNoAutoStart(t *testing.T) {
	env := privateDefaults(t)
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--no-autostart", "status"}},
		{"env", []string{"PORTBROKER_NO_AUTOSTART=1"}, []string{"status"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := cliProcess(append(slices.Clone(env), tt.env...), tt.args...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "no portbrokerd at unix://") {
				t.Errorf("exit %d, output %q; want 1 and no daemon", code, out)
			}
			running, err := clienttest.Processes(clienttest.Binary(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(running) != 0 {
				t.Errorf("portbrokerd started anyway: %v", running)
				stopDaemons(t, running)
			}
		})
	}
}

// stopDaemons stops daemons the test did not start as children.
func stopDaemons(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	waitGone(t, pids...)
}

// TestFirewallUnimplementedOnUnix: the firewall commands say plainly that
// only Windows has a firewall for the broker to manage, and exit 1.
func TestFirewallUnimplementedOnUnix(t *testing.T) {
	d := clienttest.Start(t, clienttest.Binary(t))
	for _, args := range [][]string{{"firewall", "list"}, {"firewall", "open", "8000"}, {"firewall", "close", "8000"}} {
		r := brokerctl(t, append([]string{"--addr", d.Addr}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "Windows only") {
			t.Errorf("brokerctl %v = exit %d, stderr %q; want exit 1 saying Windows only", args, r.code, r.stderr)
		}
	}
	r := brokerctl(t, "--addr", d.Addr, "firewall", "open", "70000")
	if r.code != 2 {
		t.Errorf("firewall open 70000 = exit %d, want 2", r.code)
	}
}
