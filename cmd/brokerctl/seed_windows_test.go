package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	xwin "golang.org/x/sys/windows"
)

// The scenario portbroker exists for, on Windows: a leftover process holds
// a port. who names it and explains the bind error, acquire and run fall
// back to another port, doctor says the port is not usable, and reclaim
// --kill stops the process and frees the port. Under Wine (CI) this needs
// GetExtendedTcpTable's owner PIDs, which Wine 10 reports.
func TestSeedScenario(t *testing.T) {
	addr, c := realDaemon(t)
	cmd, pid, port := squatter(t, "console")
	portStr := strconv.Itoa(port)
	exe := strings.ToLower(filepath.Base(os.Args[0]))

	r := brokerctl(t, "--addr", addr, "who", portStr)
	if r.code != 0 {
		t.Fatalf("who %d: exit %d, stderr %q", port, r.code, r.stderr)
	}
	for _, want := range []string{
		"port " + portStr + "/tcp\n",
		"holder:    pid " + strconv.Itoa(pid) + " (",
		"WSAEADDRINUSE, 10048",
		"reclaim " + portStr + " --kill",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("who: output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(strings.ToLower(r.stdout), exe) {
		t.Errorf("who: output does not name the squatter's executable %s:\n%s", exe, r.stdout)
	}

	r = brokerctl(t, "--addr", addr, "acquire", "web", "--port", portStr, "--pid", strconv.Itoa(os.Getpid()))
	if r.code != 0 {
		t.Fatalf("acquire --port %d: exit %d, stderr %q", port, r.code, r.stderr)
	}
	web := leaseNamed(t, c, "web")
	if web == nil || web.Port == port {
		t.Fatalf("acquire --port %d (held) gave lease %+v; want another port", port, web)
	}
	if r.stdout != strconv.Itoa(web.Port)+"\n" || !strings.Contains(r.stderr, "port "+portStr+" not granted") ||
		!strings.Contains(r.stderr, "(WSAEADDRINUSE, 10048)") || !strings.HasSuffix(r.stderr, fmt.Sprintf("; leased %d instead\n", web.Port)) {
		t.Errorf("acquire --port %d: stdout %q, stderr %q; want the lease's port %d, and the fall-back explained with 10048", port, r.stdout, r.stderr, web.Port)
	}

	run := cliProcess([]string{childEnv + "=report"}, "--addr", addr, "run", "api", "--port", portStr, "--", os.Args[0])
	stdin, err := run.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var runErr strings.Builder
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		run.Process.Kill()
		run.Wait()
	})
	got := report(t, bufio.NewReader(stdout))
	if childPID, err := strconv.Atoi(got["pid"]); err == nil {
		openChild(t, childPID)
	}
	if got["PORT"] == "" || got["PORT"] == portStr || got["PORT"] == strconv.Itoa(web.Port) {
		t.Errorf("brokerctl run --port %d (held) gave the child PORT=%q; want a free port other than web's %d", port, got["PORT"], web.Port)
	}
	stdin.Close()
	if err := run.Wait(); err != nil {
		t.Errorf("brokerctl run: %v; stderr %q", err, runErr.String())
	}
	if want := "port " + portStr + " is busy"; !strings.Contains(runErr.String(), want) {
		t.Errorf("brokerctl run: stderr %q lacks %q", runErr.String(), want)
	}

	r = brokerctl(t, "--addr", addr, "doctor", portStr)
	if r.code != 1 || !strings.Contains(r.stdout, "holder:    pid "+strconv.Itoa(pid)+" (") ||
		!strings.Contains(r.stdout, "=> NOT USABLE: port "+portStr+" is in use by pid") {
		t.Errorf("doctor %d: exit %d, want 1 naming pid %d; stdout:\n%s\nstderr %q", port, r.code, pid, r.stdout, r.stderr)
	}

	r = brokerctl(t, "--addr", addr, "reclaim", portStr)
	if r.code != 1 || !strings.Contains(r.stderr, "port "+portStr+" is not free") {
		t.Errorf("reclaim without --kill: exit %d, stderr %q; want 1, not free", r.code, r.stderr)
	}
	h, err := xwin.OpenProcess(xwin.SYNCHRONIZE|xwin.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		t.Fatalf("open squatter %d: %v", pid, err)
	}
	defer xwin.CloseHandle(h)
	if exited(t, h, 0) {
		t.Fatal("reclaim without --kill stopped the squatter")
	}

	r = brokerctl(t, "--addr", addr, "reclaim", portStr, "--kill")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("pid %d (", pid)) || !strings.HasSuffix(r.stdout, "port "+portStr+" is free\n") {
		t.Errorf("reclaim --kill: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The squatter has no window or console to close, so the grace passes
	// and it is stopped by force, with exit code 1 (its own exit is 0).
	if !exited(t, h, failAfter) {
		t.Fatal("the squatter runs after reclaim --kill")
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("squatter exit code %d; want 1, TerminateProcess's", code)
	}
	if !canBind(port) {
		t.Errorf("port %d cannot be bound after reclaim --kill", port)
	}
	r = brokerctl(t, "--addr", addr, "doctor", portStr)
	if r.code != 0 || !strings.Contains(r.stdout, "=> ok: port "+portStr+" is free") {
		t.Errorf("doctor %d after reclaim: exit %d, stdout:\n%s\nstderr %q", port, r.code, r.stdout, r.stderr)
	}
}

// A squatter with a window is stopped gracefully: reclaim --kill closes
// its window (WM_CLOSE), it exits by itself with code 0 before the force
// that would end it with code 1, and the port is free.
func TestSeedScenarioGraceful(t *testing.T) {
	addr, _ := realDaemon(t)
	cmd, pid, port := squatter(t, "window")
	portStr := strconv.Itoa(port)
	r := brokerctl(t, "--addr", addr, "who", portStr)
	if r.code != 0 || !strings.Contains(r.stdout, "holder:    pid "+strconv.Itoa(pid)+" (") {
		t.Fatalf("who %d: exit %d, want pid %d named; stdout:\n%s\nstderr %q", port, r.code, pid, r.stdout, r.stderr)
	}
	// Under Wine the first window also starts Wine's desktop process,
	// explorer.exe, as the squatter's child: it has no window of its own to
	// close, so it is stopped by force when the grace ends, as any such
	// descendant would be. The grace only bounds that wait.
	r = brokerctl(t, "--addr", addr, "reclaim", portStr, "--kill", "--grace", "15s")
	if r.code != 0 || !strings.HasPrefix(r.stdout, fmt.Sprintf("pid %d (", pid)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("pid %d (%s) stopped gracefully\n", pid, filepath.Base(os.Args[0]))) ||
		!strings.HasSuffix(r.stdout, "port "+portStr+" is free\n") {
		t.Errorf("reclaim --kill: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("squatter exit code %d; want 0, its own after WM_CLOSE", code)
	}
	if !canBind(port) {
		t.Errorf("port %d cannot be bound after reclaim --kill", port)
	}
}
