// Package clienttest runs a real portbrokerd for tests of code that uses
// the client, the way net/http/httptest runs a real server:
//
//	d := clienttest.Start(t, "/path/to/portbrokerd")
//	c, err := client.New(ctx, client.WithAddr(d.Addr))
//
// Each daemon gets a private socket, state dir and config dir, a port range
// of its own, and is stopped when the test ends.
package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the waits around a daemon's life. They only bound failures: a
// healthy daemon is ready, and stops, in a fraction of them.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// readyLine is what the daemon logs once it accepts calls.
const readyLine = "portbrokerd serving"

// Daemon is a running portbrokerd.
type Daemon struct {
	// Addr is the address it serves, to pass to client.WithAddr or
	// --addr.
	Addr string
	// Dir holds the socket, StateDir and the config dir; it is short, so
	// unix socket paths under it fit.
	Dir      string
	StateDir string
	// Range is the pool's range, as --range takes it.
	Range string
	PID   int

	cmd *exec.Cmd
	log *logWriter
}

// Start starts the daemon binary bin with a private address and state dir,
// extra flags appended, and waits until it serves. The daemon is stopped
// (SIGTERM, then killed if it does not stop) when the test ends, and its
// log is printed if the test failed.
func Start(t testing.TB, bin string, flags ...string) *Daemon {
	t.Helper()
	// t.TempDir can be too long for a unix socket path (about 100 bytes).
	dir, err := os.MkdirTemp("", "pb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Daemon{Dir: dir, StateDir: filepath.Join(dir, "state"), log: newLogWriter()}
	if runtime.GOOS == "windows" {
		d.Addr = fmt.Sprintf("npipe:////./pipe/portbroker-test-%d-%d", os.Getpid(), rand.Uint32())
	} else {
		d.Addr = "unix://" + filepath.Join(dir, "s.sock")
	}
	// A range of its own keeps daemons of parallel tests from handing
	// out the same ports.
	first := 20000 + 200*rand.IntN(60)
	d.Range = fmt.Sprintf("%d-%d", first, first+199)
	args := append([]string{"--addr", d.Addr, "--state-dir", d.StateDir, "--range", d.Range}, flags...)
	d.cmd = exec.Command(bin, args...)
	// A private config dir keeps the user's portbroker.yaml out.
	d.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir, "PORTBROKER_CONFIG=")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	d.PID = d.cmd.Process.Pid
	t.Cleanup(func() {
		d.Stop(t)
		if t.Failed() {
			t.Logf("portbrokerd log:\n%s", d.log)
		}
	})
	select {
	case <-d.log.ready:
	case <-time.After(readyTimeout):
		t.Fatalf("portbrokerd did not serve within %v; log:\n%s", readyTimeout, d.log)
	}
	return d
}

// Stop stops the daemon and waits for it; a second Stop does nothing.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	if runtime.GOOS == "windows" {
		d.cmd.Process.Kill()
	} else {
		d.cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil && runtime.GOOS != "windows" {
			t.Errorf("portbrokerd exited with %v", err)
		}
	case <-time.After(stopTimeout):
		d.cmd.Process.Kill()
		<-done
		t.Errorf("portbrokerd did not stop within %v of SIGTERM; killed", stopTimeout)
	}
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string { return d.log.String() }

// logWriter keeps the daemon's output and closes ready at readyLine.
type logWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func newLogWriter() *logWriter { return &logWriter{ready: make(chan struct{})} }

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(readyLine)) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Processes returns the PIDs of running processes started from the binary
// at path, so that a TestMain can check that no daemon outlived its tests.
// It reads /proc on Linux and asks ps elsewhere on Unix; on Windows it
// returns nothing.
func Processes(path string) ([]int, error) {
	switch runtime.GOOS {
	case "windows":
		return nil, nil
	case "linux":
		return procScan(path)
	}
	out, err := exec.Command("ps", "-A", "-o", "pid=", "-o", "command=").Output()
	if err != nil {
		return nil, fmt.Errorf("ps: %w", err)
	}
	var pids []int
	for _, line := range strings.Split(string(out), "\n") {
		pidStr, cmd, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !(cmd == path || strings.HasPrefix(strings.TrimSpace(cmd), path+" ")) {
			continue
		}
		if pid, err := strconv.Atoi(pidStr); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func procScan(path string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The first word of the command line, as exec'd: a deleted
		// binary's /proc/PID/exe no longer matches its path.
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) == path && !zombie(e.Name()) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// zombie reports whether /proc/PID is a process that exited and awaits
// its parent's wait.
func zombie(pid string) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold spaces or parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// Build builds the package at importPath (such as
// "github.com/portbroker/portbroker/cmd/portbrokerd") into dir with the go
// command, for tests inside this module, and returns the binary's path.
func Build(ctx context.Context, dir, importPath string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(importPath))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, importPath).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", importPath, err, out)
	}
	return bin, nil
}

// built is the portbrokerd that Binary builds, once per test binary.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// Binary builds portbrokerd once per test binary and returns its path.
// Call CheckLeftovers from TestMain to remove it and catch daemons that
// outlived their tests.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "pbbin"); built.err != nil {
			return
		}
		built.bin, built.err = Build(context.Background(), built.dir, "github.com/portbroker/portbroker/cmd/portbrokerd")
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// CheckLeftovers, for TestMain after m.Run, kills any daemon Binary built
// that is still running, removes the binary, and returns code, or 1 if a
// daemon had to be killed: no test may leave one behind.
func CheckLeftovers(code int) int {
	if built.bin != "" {
		pids, err := Processes(built.bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "check for leftover daemons: %v\n", err)
			code = 1
		}
		for _, pid := range pids {
			fmt.Fprintf(os.Stderr, "portbrokerd pid %d outlived the tests; killing it\n", pid)
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
			code = 1
		}
	}
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}
