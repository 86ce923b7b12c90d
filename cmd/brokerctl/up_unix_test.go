//go:build unix

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
	"github.com/portbroker/portbroker/internal/project"
)

// upHelper plays a service of a stack (mode "up"); args are ACTION NAME
// [ARG]. Serving services print one line,
//
//	NAME pid=PID port=PORT env=PORT_A=1,PORT_B=2 args=ARG
//
// and answer every HTTP request with NAME until a signal ends them.
func upHelper(args []string) int {
	if len(args) < 2 {
		fmt.Fprintf(os.Stderr, "up helper: want ACTION NAME [ARG], got %q\n", args)
		return 3
	}
	action, name, arg := args[0], args[1], ""
	if len(args) > 2 {
		arg = args[2]
	}
	fail := func(err error) int {
		fmt.Printf("%s failed: %v\n", name, err)
		return 3
	}
	switch action {
	case "serve":
	case "stubborn":
		// Ignores the graceful stop.
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	case "gated":
		// Serves only once the file arg exists.
		fmt.Printf("%s waiting for %s\n", name, arg)
		for {
			if _, err := os.Stat(arg); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	case "needs":
		// Its first act is to reach the service whose port is in $arg.
		conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", os.Getenv(arg)))
		if err != nil {
			return fail(fmt.Errorf("reach %s: %w", arg, err))
		}
		conn.Close()
	case "unhealthy":
		// Accepts at once, but /health answers 503 until the file arg
		// exists.
		ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
		if err != nil {
			return fail(err)
		}
		fmt.Printf("%s accepting\n", name)
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := os.Stat(arg); err != nil && r.URL.Path == "/health" {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, name)
		}))
		return 0
	case "needs-health":
		// Its first act is to ask the health of the service whose port is
		// in $arg.
		resp, err := http.Get("http://127.0.0.1:" + os.Getenv(arg) + "/health")
		if err != nil {
			return fail(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fail(fmt.Errorf("%s /health: %s", arg, resp.Status))
		}
	case "exit":
		code, _ := strconv.Atoi(arg)
		fmt.Printf("%s exiting with %d\n", name, code)
		return code
	default:
		return fail(fmt.Errorf("unknown action %q", action))
	}
	ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		return fail(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORT_") {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	fmt.Printf("%s pid=%d port=%s env=%s args=%s\n", name, os.Getpid(), os.Getenv("PORT"), strings.Join(env, ","), arg)
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
	return 0
}

// served is what a serving helper said.
type served struct {
	pid, port int
	env       map[string]string
	args      string
}

// upRun is a brokerctl up under test.
type upRun struct {
	cmd *exec.Cmd
	upOutput
	stderr *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startUp starts brokerctl up in dir against the daemon at addr. At
// cleanup it is killed if it still runs, which the broker's orphan rule
// answers by stopping its services.
func startUp(t *testing.T, addr, dir string, args ...string) *upRun {
	t.Helper()
	cmd := cliProcess([]string{helperEnv + "=up", "NO_COLOR=1"}, append([]string{"--addr", addr, "up"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	u := &upRun{cmd: cmd, stderr: &syncBuf{}}
	cmd.Stderr = u.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u.upOutput = readUpOutput(out, u.stderr)
	t.Cleanup(func() {
		if u.cmd.ProcessState == nil {
			u.cmd.Process.Kill()
			u.wait(t)
		}
	})
	return u
}

// served waits for a serving helper's line.
func (u *upRun) served(t *testing.T, name string) served {
	t.Helper()
	text := u.line(t, name, name+" pid=")
	var s served
	s.env = map[string]string{}
	for _, f := range strings.Fields(text)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pid":
			s.pid, _ = strconv.Atoi(v)
		case "port":
			s.port, _ = strconv.Atoi(v)
		case "env":
			for _, kv := range strings.Split(v, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					s.env[k] = v
				}
			}
		case "args":
			s.args = v
		}
	}
	if s.pid == 0 || s.port == 0 {
		t.Fatalf("%s said %q", name, text)
	}
	return s
}

// wait waits for up to exit and returns the rest of its output.
func (u *upRun) wait(t *testing.T) string {
	t.Helper()
	for l := range u.lines {
		u.seen = append(u.seen, l)
	}
	u.cmd.Wait()
	return strings.Join(u.seen, "\n")
}

// writeFile writes a project file and returns its directory.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// svc is a Procfile or yaml command that runs the helper.
func svc(action, name string, arg ...string) string {
	return strings.Join(append([]string{os.Args[0], action, name}, arg...), " ")
}

func httpGet(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatalf("GET port %d: %v", port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// projectLeases returns the leases of namespace ns by name.
func projectLeases(t *testing.T, c *client.Client, ns string) map[string]*client.Lease {
	t.Helper()
	leases, err := c.List(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*client.Lease{}
	for _, l := range leases {
		out[l.Name] = l
	}
	return out
}

// A Procfile stack serves, every service sees every sibling's port, the
// leases are the services' with up as launcher; Ctrl-C stops it all and
// releases the leases, and the next up gets the same ports.
func TestUpProcfileStack(t *testing.T) {
	d, c := realDaemon(t)
	dir := writeFile(t, filepath.Join(t.TempDir(), "shop"), "Procfile",
		"# three services\nweb: "+svc("serve", "web", "--api={port:api}")+"\napi: "+svc("serve", "api")+"\nauth-v2: "+svc("serve", "auth-v2")+"\n")
	ns := project.DirNamespace(dir)

	var first map[string]int
	for round := range 2 {
		u := startUp(t, d.Addr, dir)
		got := map[string]served{}
		for _, name := range []string{"web", "api", "auth-v2"} {
			got[name] = u.served(t, name)
			killStray(t, got[name].pid)
		}
		wantEnv := map[string]string{
			"PORT_WEB": strconv.Itoa(got["web"].port), "PORT_API": strconv.Itoa(got["api"].port), "PORT_AUTH_V2": strconv.Itoa(got["auth-v2"].port),
		}
		leases := projectLeases(t, c, ns)
		for name, s := range got {
			if !mapsEqual(s.env, wantEnv) {
				t.Errorf("%s saw %v, want %v", name, s.env, wantEnv)
			}
			l := leases[name]
			if l == nil || l.Port != s.port || l.OwnerPID != s.pid || l.LauncherPID != u.cmd.Process.Pid {
				t.Errorf("%s: lease %+v; want port %d owned by %d, launched by up %d", name, l, s.port, s.pid, u.cmd.Process.Pid)
			}
			if body := httpGet(t, s.port); body != name {
				t.Errorf("GET %s's port %d = %q", name, s.port, body)
			}
			u.line(t, "up", name+" ready: http://localhost:"+strconv.Itoa(s.port))
		}
		if want := "--api=" + strconv.Itoa(got["api"].port); got["web"].args != want {
			t.Errorf("web's {port:api} became %q, want %q", got["web"].args, want)
		}
		ports := map[string]int{}
		for name, s := range got {
			ports[name] = s.port
		}
		if round == 0 {
			first = ports
		} else if !mapsEqual(ports, first) {
			t.Errorf("second up got ports %v, want the first run's %v", ports, first)
		}

		if err := u.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		out := u.wait(t)
		if code := u.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "stopped; leases released") {
			t.Errorf("up after SIGINT: exit %d; output:\n%s\nstderr: %s", code, out, u.stderr)
		}
		for name, s := range got {
			if alive(s.pid) {
				t.Errorf("%s (pid %d) runs after up stopped", name, s.pid)
			}
		}
		if left := projectLeases(t, c, ns); len(left) != 0 {
			t.Errorf("leases after up stopped: %v", left)
		}
	}
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Two checkouts in directories of the same name run side by side.
func TestUpTwoCheckouts(t *testing.T) {
	d, c := realDaemon(t)
	var ups []*upRun
	var ports []int
	var dirs []string
	for range 2 {
		dir := writeFile(t, filepath.Join(t.TempDir(), "app"), "Procfile", "web: "+svc("serve", "web")+"\n")
		u := startUp(t, d.Addr, dir)
		s := u.served(t, "web")
		killStray(t, s.pid)
		ups, ports, dirs = append(ups, u), append(ports, s.port), append(dirs, dir)
	}
	if ports[0] == ports[1] {
		t.Fatalf("both checkouts serve on %d", ports[0])
	}
	for i, dir := range dirs {
		if l := projectLeases(t, c, project.DirNamespace(dir))["web"]; l == nil || l.Port != ports[i] {
			t.Errorf("checkout %d: lease %+v, want web on %d in its own namespace", i, l, ports[i])
		}
		r := cliProcess(nil, "--addr", d.Addr, "port", "web")
		r.Dir = dir
		out, err := r.Output()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(ports[i]) {
			t.Errorf("brokerctl port web in checkout %d = %q, %v; want %d", i, out, err, ports[i])
		}
	}
	for _, u := range ups {
		u.cmd.Process.Signal(syscall.SIGTERM)
		u.wait(t)
		if code := u.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("up after SIGTERM exited %d: %s", code, u.stderr)
		}
	}
}

// A second up of the same checkout is refused, naming the project, and
// leaves the first one alone.
func TestUpTwiceInOneCheckout(t *testing.T) {
	d, c := realDaemon(t)
	dir := writeFile(t, t.TempDir(), "Procfile", "web: "+svc("serve", "web")+"\n")
	first := startUp(t, d.Addr, dir)
	web := first.served(t, "web")
	killStray(t, web.pid)
	second := startUp(t, d.Addr, dir)
	second.wait(t)
	ns := project.DirNamespace(dir)
	if code := second.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(second.stderr.String(), "is project "+ns+" already up?") {
		t.Errorf("second up: exit %d, stderr %q", code, second.stderr)
	}
	if l := projectLeases(t, c, ns)["web"]; l == nil || l.OwnerPID != web.pid || !alive(web.pid) {
		t.Errorf("after the second up, web's lease is %+v; want the first up's (pid %d) alive", l, web.pid)
	}
	first.cmd.Process.Signal(syscall.SIGTERM)
	first.wait(t)
}

// SIGKILL of up leaves no service running: the broker sees the launcher
// die and stops every service, even one still held back by after:.
func TestUpKilledLeavesNothing(t *testing.T) {
	d, c := realDaemon(t)
	dir := t.TempDir()
	writeFile(t, dir, "portbroker.yaml", fmt.Sprintf(`services:
  web:
    run: %s
  api:
    run: %s
  late:
    run: %s
    after: [api]
`, svc("serve", "web"), svc("gated", "api", filepath.Join(dir, "never")), svc("serve", "late")))
	u := startUp(t, d.Addr, dir)
	web := u.served(t, "web")
	u.line(t, "api", "api waiting")
	ns := project.DirNamespace(dir)
	leases := projectLeases(t, c, ns)
	if len(leases) != 3 {
		t.Fatalf("leases %v, want web, api and the held late", leases)
	}
	var pids []int
	for _, l := range leases {
		pids = append(pids, l.OwnerPID)
	}
	killStray(t, pids...)
	if err := u.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	u.wait(t)
	waitGone(t, pids...)
	if alive(web.pid) {
		t.Errorf("web %d runs", web.pid)
	}
	deadline := time.Now().Add(failAfter)
	for len(projectLeases(t, c, ns)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leases left: %v", projectLeases(t, c, ns))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// after: holds a service back until its dependency's port accepts: the
// frontend's first act is to connect to the backend, which listens only
// once the test lets it, after checking that the frontend is still held.
func TestUpAfter(t *testing.T) {
	d, c := realDaemon(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	writeFile(t, dir, "portbroker.yaml", fmt.Sprintf(`name: after-test
services:
  frontend:
    run: %s
    after: [backend]
  backend:
    run: %s
`, svc("needs", "frontend", "PORT_BACKEND"), svc("gated", "backend", gate)))
	u := startUp(t, d.Addr, dir)
	u.line(t, "backend", "backend waiting")
	l := projectLeases(t, c, namedNamespace(dir, "after-test"))["frontend"]
	if l == nil {
		t.Fatal("frontend has no lease while held; every port is leased before anything starts")
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", l.OwnerPID))
	if err != nil || !strings.Contains(string(cmdline), upShimArg) {
		t.Fatalf("frontend's owner %d runs %q (%v) while backend is not ready; want the waiting shim", l.OwnerPID, cmdline, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	backend := u.served(t, "backend")
	frontend := u.served(t, "frontend")
	killStray(t, backend.pid, frontend.pid)
	if frontend.pid != l.OwnerPID {
		t.Errorf("frontend runs as %d, its lease names %d", frontend.pid, l.OwnerPID)
	}
	u.cmd.Process.Signal(syscall.SIGTERM)
	u.wait(t)
}

// ready: {http: PATH} waits for the path to answer, not just for the port;
// ready: {log: REGEXP} for a line of output.
func TestUpReadyChecks(t *testing.T) {
	d, c := realDaemon(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "healthy")
	writeFile(t, dir, "portbroker.yaml", fmt.Sprintf(`name: ready-test
services:
  api:
    run: %s
    ready: {http: /health}
  web:
    run: %s
    after: [api, db]
  db:
    run: %s
    ready: {log: "^db pid="}
`, svc("unhealthy", "api", gate), svc("needs-health", "web", "PORT_API"), svc("serve", "db")))
	u := startUp(t, d.Addr, dir)
	u.line(t, "api", "api accepting")
	db := u.served(t, "db")
	killStray(t, db.pid)
	u.line(t, "up", "db ready: ")
	l := projectLeases(t, c, namedNamespace(dir, "ready-test"))["web"]
	if l == nil {
		t.Fatal("web has no lease")
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", l.OwnerPID))
	if err != nil || !strings.Contains(string(cmdline), upShimArg) {
		t.Fatalf("web's owner %d runs %q (%v) while api's /health fails; want the waiting shim", l.OwnerPID, cmdline, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	u.line(t, "up", "api ready: ")
	web := u.served(t, "web")
	killStray(t, web.pid)
	u.cmd.Process.Signal(syscall.SIGTERM)
	u.wait(t)
}

// A dependency that never becomes ready fails the stack, naming it.
func TestUpReadyTimeout(t *testing.T) {
	d, _ := realDaemon(t)
	dir := t.TempDir()
	writeFile(t, dir, "portbroker.yaml", fmt.Sprintf(`services:
  db:
    run: %s
    ready: {log: "^db accepting", timeout: 1s}
  app:
    run: %s
    after: [db]
`, svc("serve", "db"), svc("serve", "app")))
	u := startUp(t, d.Addr, dir)
	db := u.served(t, "db")
	killStray(t, db.pid)
	out := u.wait(t)
	if code := u.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(u.stderr.String(), "app waits for db, which was not ready within 1s") {
		t.Errorf("exit %d, stderr %q; output:\n%s", code, u.stderr, out)
	}
	if strings.Contains(out, "app pid=") {
		t.Errorf("app started although db never became ready:\n%s", out)
	}
	waitGone(t, db.pid)
}

// Preferred ports, --port NAME=N, --dynamic, and brokerctl port inside and
// outside the project.
func TestUpPortChoice(t *testing.T) {
	d, c := realDaemon(t)
	preferred, _ := strconv.Atoi(freePort(t))
	override, _ := strconv.Atoi(freePort(t))
	dir := writeFile(t, filepath.Join(t.TempDir(), "proj"), "portbroker.yaml", fmt.Sprintf(`name: ports
services:
  web:
    run: %s
    port: %d
`, svc("serve", "web"), preferred))
	sub := filepath.Join(dir, "deep", "er")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	// A lease of the same name outside the project, which port must not
	// confuse with the project's.
	other, err := c.Acquire(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}

	portCmd := func(dir string, args ...string) (string, int) {
		cmd := cliProcess(nil, append([]string{"--addr", d.Addr, "port", "web"}, args...)...)
		cmd.Dir = dir
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out)), cmd.ProcessState.ExitCode()
	}
	for _, tt := range []struct {
		name string
		args []string
		want func(port int) bool
	}{
		{"preferred", nil, func(p int) bool { return p == preferred }},
		{"--port", []string{"--port", "web=" + strconv.Itoa(override)}, func(p int) bool { return p == override }},
		// --dynamic ignores the file's port; the service may get its last one.
		{"--dynamic", []string{"--dynamic"}, func(p int) bool { return p != preferred }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := startUp(t, d.Addr, dir, tt.args...)
			s := u.served(t, "web")
			killStray(t, s.pid)
			if !tt.want(s.port) {
				t.Errorf("web on %d (preferred %d, override %d)", s.port, preferred, override)
			}
			if out, code := portCmd(sub); code != 0 || out != strconv.Itoa(s.port) {
				t.Errorf("port web inside the project = %q, exit %d; want %d", out, code, s.port)
			}
			ns := namedNamespace(dir, "ports")
			if out, code := portCmd(outside, "--namespace", ns); code != 0 || out != strconv.Itoa(s.port) {
				t.Errorf("port web --namespace %s = %q, exit %d; want %d", ns, out, code, s.port)
			}
			u.cmd.Process.Signal(syscall.SIGINT)
			u.wait(t)
		})
	}
	if out, code := portCmd(outside); code != 0 || out != strconv.Itoa(other.Port) {
		t.Errorf("port web outside the project = %q, exit %d; want the default namespace's %d", out, code, other.Port)
	}
	if out, code := portCmd(sub); code != 1 || out != "" {
		t.Errorf("port web in the stopped project = %q, exit %d; want exit 1", out, code)
	}
}

// A service that exits stops the stack, or with --keep-going only itself.
func TestUpServiceExits(t *testing.T) {
	d, c := realDaemon(t)
	dir := writeFile(t, t.TempDir(), "Procfile", "good: "+svc("serve", "good")+"\nbad: "+svc("exit", "bad", "3")+"\n")
	ns := project.DirNamespace(dir)
	t.Run("stops the rest", func(t *testing.T) {
		u := startUp(t, d.Addr, dir)
		u.line(t, "up", "bad exited with code 3; stopping the others")
		out := u.wait(t)
		if code := u.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(u.stderr.String(), "up: bad exited with code 3") {
			t.Errorf("exit %d, stderr %q; want 1 naming bad", code, u.stderr)
		}
		for _, l := range u.seen {
			if pid, ok := strings.CutPrefix(l, "good | good pid="); ok {
				n, _ := strconv.Atoi(strings.Fields(pid)[0])
				if alive(n) {
					t.Errorf("good (pid %d) runs after up exited", n)
				}
			}
		}
		if left := projectLeases(t, c, ns); len(left) != 0 {
			t.Errorf("leases left: %v\n%s", left, out)
		}
	})
	t.Run("keep going", func(t *testing.T) {
		u := startUp(t, d.Addr, dir, "--keep-going")
		good := u.served(t, "good")
		killStray(t, good.pid)
		u.line(t, "up", "bad exited with code 3")
		if !alive(good.pid) {
			t.Fatal("good stopped with --keep-going")
		}
		leases := projectLeases(t, c, ns)
		if leases["good"] == nil || leases["bad"] != nil {
			t.Errorf("leases %v; want good's only", leases)
		}
		u.cmd.Process.Signal(syscall.SIGTERM)
		u.wait(t)
		if alive(good.pid) {
			t.Errorf("good runs after SIGTERM to up")
		}
		if code := u.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(u.stderr.String(), "up: bad exited with code 3") {
			t.Errorf("up --keep-going after bad failed: exit %d, stderr %q; want 1 naming bad", code, u.stderr)
		}
	})
}

// A service that ignores the graceful stop is killed after its grace.
func TestUpGraceThenKill(t *testing.T) {
	d, _ := realDaemon(t)
	dir := writeFile(t, t.TempDir(), "portbroker.yaml", fmt.Sprintf(`services:
  stubborn:
    run: %s
    grace: 500ms
`, svc("stubborn", "stubborn")))
	u := startUp(t, d.Addr, dir)
	s := u.served(t, "stubborn")
	killStray(t, s.pid)
	u.cmd.Process.Signal(syscall.SIGTERM)
	u.line(t, "up", "stubborn did not stop within 500ms; killing it")
	u.wait(t)
	if alive(s.pid) {
		t.Errorf("stubborn %d survived", s.pid)
	}
}

// Bad project files are refused before anything starts, naming the file,
// the line and the key.
func TestUpBadFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, file, src, want string }{
		{"unknown key", "portbroker.yaml", "services:\n  web:\n    run: x\n    prot: tcp\n", ":4: services.web.prot: unknown key"},
		{"cycle", "portbroker.yaml", "services:\n  a:\n    run: x\n    after: [b]\n  b:\n    run: x\n    after: [a]\n", ":4: services.a.after: a cycle: a → b → a"},
		{"unknown port name", "Procfile", "web: x {port:db}\n", ":1: web: {port:db}: no service \"db\""},
		{"daemon key", "portbroker.yaml", "services:\n  web: x\nstate_dir: /tmp\n", ":3: state_dir: is portbrokerd's setting, not a project's: it belongs in the daemon's config file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name, tt.file)
			writeFile(t, filepath.Dir(path), tt.file, tt.src)
			r := brokerctl(t, "--addr", clienttest.DeadAddr(t), "up", "-f", path)
			if want := "brokerctl: " + path + tt.want; r.code != 1 || !strings.HasPrefix(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
		})
	}
	r := brokerctl(t, "up", "--port", "web")
	if r.code != 2 || !strings.Contains(r.stderr, "--port: want NAME=PORT") {
		t.Errorf("--port web: exit %d, stderr %q", r.code, r.stderr)
	}
}

// When a directory has both files, up says which it uses.
func TestUpBothFiles(t *testing.T) {
	d, _ := realDaemon(t)
	dir := writeFile(t, t.TempDir(), "Procfile", "web: "+svc("exit", "procfile", "0")+"\n")
	writeFile(t, dir, "portbroker.yaml", "services:\n  web: "+svc("exit", "yaml", "0")+"\n")
	u := startUp(t, d.Addr, dir)
	u.line(t, "web", "yaml exiting")
	u.wait(t)
	want := fmt.Sprintf("brokerctl: using %s; %s is ignored\n", filepath.Join(dir, "portbroker.yaml"), filepath.Join(dir, "Procfile"))
	if !strings.HasPrefix(u.stderr.String(), want) {
		t.Errorf("stderr %q, want it to start %q", u.stderr, want)
	}
}

// Inside a project, leases, who and release work in its namespace.
func TestProjectNamespaceDefaults(t *testing.T) {
	d, c := realDaemon(t)
	dir := writeFile(t, filepath.Join(t.TempDir(), "proj"), "Procfile", "web: x\n")
	ns := project.DirNamespace(dir)
	outside, err := c.Acquire(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	inside, err := c.Acquire(t.Context(), "web", client.WithNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, args ...string) (string, int) {
		cmd := cliProcess(nil, append([]string{"--addr", d.Addr}, args...)...)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run(dir, "leases"); code != 0 || !strings.Contains(out, inside.ID) || strings.Contains(out, outside.ID) {
		t.Errorf("leases in the project: exit %d\n%s\nwant %s only", code, out, inside.ID)
	}
	if out, code := run(dir, "leases", "--namespace", ""); code != 0 || !strings.Contains(out, inside.ID) || !strings.Contains(out, outside.ID) {
		t.Errorf("leases --namespace '' in the project: exit %d\n%s\nwant both", code, out)
	}
	if out, code := run(dir, "who", "web"); code != 0 || !strings.HasPrefix(out, fmt.Sprintf("port %d/tcp\n", inside.Port)) {
		t.Errorf("who web in the project: exit %d\n%s\nwant port %d", code, out, inside.Port)
	}
	if out, code := run(t.TempDir(), "who", "web"); code != 2 {
		t.Errorf("who web outside a project: exit %d, want 2\n%s", code, out)
	}
	if out, code := run(dir, "release", "web"); code != 0 || !strings.Contains(out, "released "+inside.ID) {
		t.Errorf("release web in the project: exit %d\n%s", code, out)
	}
	if l := projectLeases(t, c, "default")["web"]; l == nil || l.ID != outside.ID {
		t.Errorf("the default namespace's web is %+v after release in the project; want it kept", l)
	}
}

// namedNamespace is the namespace of the checkout in dir whose file says
// name: name.
func namedNamespace(dir, name string) string {
	return (&project.Project{Dir: dir, Name: name}).Namespace("")
}
