package main

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/internal/project"
)

// upServiceEnv makes the test binary a service of brokerctl up: with
// "serve", its arguments are NAME; it listens on $PORT, prints
//
//	NAME pid=PID ppid=PPID port=PORT env=PORT_A=1,PORT_B=2
//
// and answers every connection with NAME until it is killed or
// interrupted (then it says "NAME interrupted" and exits 0); with
// "exit", its arguments are NAME CODE and it exits with CODE. brokerctl
// up (whose init skips this, having $BROKERCTL_TEST_CLI) passes the
// variable on to its services.
const upServiceEnv = "BROKERCTL_TEST_WINDOWS_UP"

func init() {
	mode := os.Getenv(upServiceEnv)
	if os.Getenv(cliEnv) == "1" || mode == "" {
		return
	}
	os.Exit(upService(mode, os.Args[1:]))
}

func upService(mode string, args []string) int {
	if len(args) < 1 {
		fmt.Printf("up service: want NAME, got %q\n", args)
		return 3
	}
	name := args[0]
	if mode == "exit" {
		code := 0
		if len(args) > 1 {
			code, _ = strconv.Atoi(args[1])
		}
		fmt.Printf("%s exiting with %d\n", name, code)
		return code
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Printf("%s failed: %v\n", name, err)
		return 3
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORT_") {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	// CTRL_BREAK, up's graceful stop, arrives as os.Interrupt.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	go func() {
		<-stop
		fmt.Printf("%s interrupted\n", name)
		os.Exit(0)
	}()
	fmt.Printf("%s pid=%d ppid=%d port=%s env=%s\n", name, os.Getpid(), os.Getppid(), os.Getenv("PORT"), strings.Join(env, ","))
	for {
		conn, err := ln.Accept()
		if err != nil {
			return 3
		}
		fmt.Fprint(conn, name)
		conn.Close()
	}
}

// winUp is a brokerctl up under test.
type winUp struct {
	cmd *exec.Cmd
	upOutput
	stderr *syncBuffer
}

// startWinUp starts brokerctl up in dir against the daemon at addr,
// created with flags (the console it gets); at cleanup it is killed if it
// still runs.
func startWinUp(t *testing.T, addr, dir string, flags uint32) *winUp {
	t.Helper()
	cmd := cliProcess([]string{upServiceEnv + "=serve", "NO_COLOR=1"}, "--addr", addr, "up")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: flags}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	u := &winUp{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = u.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u.upOutput = readUpOutput(out, u.stderr)
	t.Cleanup(func() {
		if u.cmd.ProcessState == nil {
			u.cmd.Process.Kill()
			u.wait()
		}
	})
	return u
}

// wait waits for up to exit and returns all its output.
func (u *winUp) wait() string {
	for l := range u.lines {
		u.seen = append(u.seen, l)
	}
	u.cmd.Wait()
	return strings.Join(u.seen, "\n")
}

// winServed is what a serving service said.
type winServed struct {
	pid, ppid, port int
	env             map[string]string
}

func (u *winUp) served(t *testing.T, name string) winServed {
	t.Helper()
	text := u.line(t, name, name+" pid=")
	s := winServed{env: map[string]string{}}
	for _, f := range strings.Fields(text)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pid":
			s.pid, _ = strconv.Atoi(v)
		case "ppid":
			s.ppid, _ = strconv.Atoi(v)
		case "port":
			s.port, _ = strconv.Atoi(v)
		case "env":
			for _, kv := range strings.Split(v, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					s.env[k] = v
				}
			}
		}
	}
	if s.pid == 0 || s.ppid == 0 || s.port == 0 {
		t.Fatalf("%s said %q", name, text)
	}
	return s
}

// writeProject writes a portbroker.yaml into a new directory and returns
// the directory.
func writeProject(t *testing.T, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "portbroker.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serviceCommand is a run: line that starts this binary as a service,
// through cmd.exe, which needs the program's full path with its drive.
func serviceCommand(t *testing.T, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A YAML single-quoted scalar keeps backslashes and double quotes.
	return `'"` + exe + `" ` + strings.Join(args, " ") + `'`
}

// dialName reads what the service on port answers.
func dialName(t *testing.T, port int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), failAfter)
	if err != nil {
		t.Fatalf("dial port %d: %v", port, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(failAfter))
	var b strings.Builder
	buf := make([]byte, 64)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// leasesGone polls until namespace ns has no lease, and reports those
// left after failAfter.
func leasesGone(t *testing.T, c *client.Client, ns string) []*client.Lease {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		leases, err := c.List(t.Context(), ns)
		if err != nil {
			t.Fatalf("List(%s): %v", ns, err)
		}
		if len(leases) == 0 || time.Now().After(deadline) {
			return leases
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A two-service stack starts: each service sees its PORT and its
// sibling's PORT_<NAME>, serves on its port, and its lease, in the
// project's namespace, is owned by the service's shell with up as
// launcher. Killed hard (TerminateProcess), up leaves no service or shell
// running, and the daemon reclaims every lease.
func TestUpStackKilledLeavesNothing(t *testing.T) {
	addr, c := realDaemon(t)
	dir := writeProject(t, "name: shop\nservices:\n  web:\n    run: "+serviceCommand(t, "web")+
		"\n  api:\n    run: "+serviceCommand(t, "api")+"\n")
	u := startWinUp(t, addr, dir, 0)

	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	ns := (&project.Project{Dir: abs, Name: "shop"}).Namespace("")
	if said := u.line(t, "up", "project shop"); !strings.Contains(said, "(namespace "+ns+")") {
		t.Errorf("up said %q; want namespace %s", said, ns)
	}
	got := map[string]winServed{}
	for _, name := range []string{"web", "api"} {
		s := u.served(t, name)
		// Should up fail to stop them, the test still does.
		openChild(t, s.pid)
		openChild(t, s.ppid)
		got[name] = s
	}
	wantEnv := map[string]string{"PORT_WEB": strconv.Itoa(got["web"].port), "PORT_API": strconv.Itoa(got["api"].port)}
	if got["web"].port == got["api"].port {
		t.Errorf("web and api both on port %d", got["web"].port)
	}
	leases := projectLeasesWin(t, c, ns)
	for name, s := range got {
		if !maps.Equal(s.env, wantEnv) {
			t.Errorf("%s saw %v, want %v", name, s.env, wantEnv)
		}
		l := leases[name]
		if l == nil || l.Port != s.port || l.OwnerPID != s.ppid || l.LauncherPID != u.cmd.Process.Pid {
			t.Errorf("%s: lease %+v; want port %d owned by its shell %d, launched by up %d", name, l, s.port, s.ppid, u.cmd.Process.Pid)
		}
		if answer := dialName(t, s.port); answer != name {
			t.Errorf("port %d of %s answered %q", s.port, name, answer)
		}
		u.line(t, "up", name+" ready: http://localhost:"+strconv.Itoa(s.port))
	}
	if len(leases) != 2 {
		t.Errorf("namespace %s holds %d leases, want web and api: %v", ns, len(leases), leases)
	}

	if err := u.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	u.wait()
	for name, s := range got {
		for _, pid := range []int{s.pid, s.ppid} {
			h := openChild(t, pid)
			if !exited(t, h, failAfter) {
				t.Errorf("%s: process %d still runs %v after up was killed", name, pid, failAfter)
			}
		}
	}
	if left := leasesGone(t, c, ns); len(left) != 0 {
		t.Errorf("%v after up was killed, leases left in %s: %v", failAfter, ns, left)
	}
}

// exitStack writes a project whose quitter exits with 7 once web is
// ready, starts up on it with creation flags, and returns up, web and the
// project's namespace.
func exitStack(t *testing.T, addr string, grace string, flags uint32) (*winUp, winServed, string) {
	t.Helper()
	dir := writeProject(t, "name: shop\nservices:\n  web:\n    run: "+serviceCommand(t, "web")+
		"\n    grace: "+grace+"\n  quitter:\n    run: "+serviceCommand(t, "quitter", "7")+
		"\n    after: [web]\n    env:\n      "+upServiceEnv+": exit\n")
	u := startWinUp(t, addr, dir, flags)
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	web := u.served(t, "web")
	u.line(t, "quitter", "quitter exiting with 7")
	u.line(t, "up", "quitter exited with code 7; stopping the others")
	return u, web, (&project.Project{Dir: abs, Name: "shop"}).Namespace("")
}

// checkStopped checks that up exited 1, web and its shell are gone and
// so are the project's leases.
func checkStopped(t *testing.T, c *client.Client, u *winUp, web winServed, ns string) {
	t.Helper()
	hWeb, hShell := openChild(t, web.pid), openChild(t, web.ppid)
	out := u.wait()
	if code := u.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("up exit code %d, want 1; output:\n%s\nstderr: %s", code, out, u.stderr)
	}
	if !exited(t, hWeb, failAfter) || !exited(t, hShell, failAfter) {
		t.Errorf("web (%d, shell %d) still runs after up stopped", web.pid, web.ppid)
	}
	if left := leasesGone(t, c, ns); len(left) != 0 {
		t.Errorf("leases left in %s after up stopped: %v", ns, left)
	}
}

// When a service exits, up stops the rest. Without a console (up created
// DETACHED_PROCESS, as every process under Wine's headless prefix is) the
// graceful stop, CTRL_BREAK to the service's console process group,
// reaches nobody: up says so, kills the service after its grace,
// releases the leases and exits 1.
func TestUpStopWithoutConsole(t *testing.T) {
	addr, c := realDaemon(t)
	u, web, ns := exitStack(t, addr, "1s", xwin.DETACHED_PROCESS)
	u.line(t, "up", "web: pass on interrupt: ")
	u.line(t, "up", "web did not stop within 1s; killing it")
	checkStopped(t, c, u, web, ns)
}

// With a console of its own, shared by its services, up stops a service
// gracefully: web gets CTRL_BREAK, says so and exits 0 within its grace
// (a minute, so only a stop that never came runs into it).
func TestUpStopWithConsole(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") == "1" {
		// Seen under Wine 10: no error sending the break, then up reports
		// web's shell exited with code 1 and web never says it was
		// interrupted, even with the job's close (which kills what is
		// left) delayed by 2s. So either Wine's cmd.exe dies of the
		// break and its child never gets it, or the group's break never
		// reaches a grandchild: the graceful path is unproven here.
		t.Skip("under Wine, CTRL_BREAK to the service's console process group ends its cmd.exe with code 1 and the service itself never handles the break, so a graceful stop cannot be observed")
	}
	addr, c := realDaemon(t)
	u, web, ns := exitStack(t, addr, "60s", xwin.CREATE_NEW_CONSOLE)
	u.line(t, "web", "web interrupted")
	u.line(t, "up", "web exited with code 0")
	checkStopped(t, c, u, web, ns)
}

func projectLeasesWin(t *testing.T, c *client.Client, ns string) map[string]*client.Lease {
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

// killShells kills the cmd.exe processes this process started and waits
// for them to exit.
func killShells(t *testing.T) int {
	t.Helper()
	snap, err := xwin.CreateToolhelp32Snapshot(xwin.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer xwin.CloseHandle(snap)
	killed := 0
	var e xwin.ProcessEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	for err = xwin.Process32First(snap, &e); err == nil; err = xwin.Process32Next(snap, &e) {
		if e.ParentProcessID != uint32(os.Getpid()) || !strings.EqualFold(xwin.UTF16ToString(e.ExeFile[:]), "cmd.exe") {
			continue
		}
		h := openChild(t, int(e.ProcessID))
		if err := xwin.TerminateProcess(h, 1); err != nil {
			t.Fatalf("kill shell %d: %v", e.ProcessID, err)
		}
		if !exited(t, h, failAfter) {
			t.Fatalf("shell %d still runs %v after TerminateProcess", e.ProcessID, failAfter)
		}
		killed++
	}
	return killed
}

// When the hand-over fails (here the suspended shell is killed just
// before it), up says the service did not start and ends its own lease
// at once: run in this process, up's lease would otherwise outlive it.
func TestUpHandOverFailureReleasesLease(t *testing.T) {
	addr, c := realDaemon(t)
	dir := writeProject(t, "name: shop\nservices:\n  web:\n    run: "+serviceCommand(t, "web")+"\n")
	killed := 0
	testHookHandOver = func(int) { killed = killShells(t) }
	t.Cleanup(func() { testHookHandOver = nil })

	r := brokerctl(t, "--addr", addr, "up", "-f", filepath.Join(dir, "portbroker.yaml"))
	if killed != 1 {
		t.Fatalf("killed %d shells before the hand-over, want web's one", killed)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "web did not start") {
		t.Errorf("up: exit %d, stderr %q; want 1 saying web did not start", r.code, r.stderr)
	}
	if l := leaseNamed(t, c, "web"); l != nil {
		t.Errorf("lease %s of port %d, owned by %d, left after the failed hand-over", l.ID, l.Port, l.OwnerPID)
	}
}
