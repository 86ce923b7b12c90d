//go:build linux || darwin

package unix

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// childEnv switches the test binary into a helper process, in the mode it
// names. Every mode prints a line starting "ready" when set up, and lives
// until its stdin closes (or it is killed), so a crashed test run leaves no
// helper behind. Modes:
//
//   - wait: prints "ready", then echoes its stdin to its stdout.
//   - ignoreterm: as wait, ignoring SIGTERM.
//   - listen: listens on netEnv and addrEnv, prints "ready PORT", then
//     echoes.
//   - tree: starts fanout children, each a tree one level shallower (a wait
//     helper at the last level), sharing its stdin; prints "ready" and
//     "PID:DEPTH" for each descendant; reaps its children when stdin closes.
const childEnv = "PORTBROKER_UNIX_TEST_CHILD"

const (
	netEnv  = "PORTBROKER_UNIX_TEST_NET"  // listen: network, as for net.Listen
	addrEnv = "PORTBROKER_UNIX_TEST_ADDR" // listen: address
	treeEnv = "PORTBROKER_UNIX_TEST_TREE" // tree: "DEPTH FANOUT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runHelper(mode); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	if leftovers := started.alive(); len(leftovers) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: tests left processes running: %v\n", leftovers)
		for _, p := range leftovers {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
		code = 1
	}
	os.Exit(code)
}

func runHelper(mode string) error {
	switch mode {
	case "wait":
		os.Stdout.WriteString("ready\n")
		io.Copy(os.Stdout, os.Stdin)
	case "ignoreterm":
		// Ignored, not caught: the kernel discards the signal when it is
		// sent, so the process survives it at once.
		signal.Ignore(syscall.SIGTERM)
		os.Stdout.WriteString("ready\n")
		io.Copy(os.Stdout, os.Stdin)
	case "listen":
		port, closeSock, err := listenHelper(os.Getenv(netEnv), os.Getenv(addrEnv))
		if err != nil {
			return err
		}
		defer closeSock()
		fmt.Fprintf(os.Stdout, "ready %d\n", port)
		io.Copy(os.Stdout, os.Stdin)
	case "tree":
		return treeHelper(os.Getenv(treeEnv))
	default:
		return fmt.Errorf("unknown mode")
	}
	return nil
}

func listenHelper(network, addr string) (port int, closeSock func() error, err error) {
	if strings.HasPrefix(network, "udp") {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return 0, nil, err
		}
		return c.LocalAddr().(*net.UDPAddr).Port, c.Close, nil
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return 0, nil, err
	}
	return ln.Addr().(*net.TCPAddr).Port, ln.Close, nil
}

func treeHelper(spec string) error {
	var depth, fanout int
	if _, err := fmt.Sscan(spec, &depth, &fanout); err != nil || depth < 1 || fanout < 1 {
		return fmt.Errorf("%s=%q: want \"DEPTH FANOUT\", both positive", treeEnv, spec)
	}
	var kids []*exec.Cmd
	line := []string{"ready"}
	for range fanout {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		if depth == 1 {
			cmd.Env = append(os.Environ(), childEnv+"=wait")
		} else {
			cmd.Env = append(os.Environ(), childEnv+"=tree", fmt.Sprintf("%s=%d %d", treeEnv, depth-1, fanout))
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		kids = append(kids, cmd)
		ready, err := readLine(out)
		if err != nil {
			return fmt.Errorf("child %d: %w", cmd.Process.Pid, err)
		}
		line = append(line, fmt.Sprintf("%d:1", cmd.Process.Pid))
		for _, f := range strings.Fields(ready)[1:] {
			pid, depth, _ := strings.Cut(f, ":")
			d, _ := strconv.Atoi(depth)
			line = append(line, fmt.Sprintf("%s:%d", pid, d+1))
		}
	}
	fmt.Fprintln(os.Stdout, strings.Join(line, " "))
	io.Copy(io.Discard, os.Stdin)
	for _, k := range kids {
		k.Wait()
	}
	return nil
}

// readLine reads one line from r, a byte at a time so as to read nothing
// after it.
func readLine(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return string(line), fmt.Errorf("read line %q: %w", line, err)
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

// started records every helper process the tests start, so that TestMain
// can check none outlives them.
var started procRecord

type procRecord struct {
	mu    sync.Mutex
	procs []broker.Process
}

func (r *procRecord) add(p broker.Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
}

// alive returns the recorded processes that still run.
func (r *procRecord) alive() []broker.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := New()
	var live []broker.Process
	for _, p := range r.procs {
		if cur, err := h.Lookup(p.PID); err == nil && cur.Same(p) {
			live = append(live, p)
		}
	}
	return live
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin *os.File
	ready *os.File
}

// startChild starts a wait helper without waiting for it to be ready.
// Cleanup kills and reaps it.
func startChild(t testing.TB) *child {
	t.Helper()
	return startHelper(t, "wait", nil)
}

// startHelper starts a helper process in mode without waiting for it to be
// ready; setup, if not nil, adjusts the command first. Cleanup kills and
// reaps it.
func startHelper(t testing.TB, mode string, setup func(*exec.Cmd)) *child {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	// *os.File streams need no copying goroutines.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if setup != nil {
		setup(cmd)
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: inW, ready: outR}
	// Not reaped until cleanup, so the lookup cannot miss it.
	if p, err := New().Lookup(cmd.Process.Pid); err == nil {
		started.add(p)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		c.ready.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

// wait blocks until the child is ready.
func (c *child) wait(t testing.TB) {
	t.Helper()
	buf := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(c.ready, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child %d did not get ready: %q, %v", c.cmd.Process.Pid, buf, err)
	}
}

// readyLine blocks until the child is ready and returns the fields after
// "ready".
func (c *child) readyLine(t testing.TB) []string {
	t.Helper()
	line, err := readLine(c.ready)
	fields := strings.Fields(line)
	if err != nil || len(fields) == 0 || fields[0] != "ready" {
		t.Fatalf("child %d did not get ready: %q, %v", c.pid(), line, err)
	}
	return fields[1:]
}

// runChild starts a helper process and waits until it is ready.
func runChild(t testing.TB) *child {
	t.Helper()
	c := startChild(t)
	c.wait(t)
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// kill kills the child without reaping it, leaving a zombie.
func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill child %d: %v", c.pid(), err)
	}
}

// killAndReap kills the child and waits until it is gone.
func (c *child) killAndReap(t testing.TB) {
	t.Helper()
	c.kill(t)
	c.cmd.Wait()
}

// lookup looks the child up, failing the test if it cannot.
func (c *child) lookup(t testing.TB, h *Host) broker.Process {
	t.Helper()
	p, err := h.Lookup(c.pid())
	if err != nil {
		t.Fatalf("Lookup(child %d): %v", c.pid(), err)
	}
	return p
}

// ping proves the child (a wait, ignoreterm or listen helper) still runs
// user code: it answers a byte sent to it.
func (c *child) ping(t testing.TB) {
	t.Helper()
	if _, err := c.stdin.Write([]byte{'?'}); err != nil {
		t.Fatalf("child %d: ping: %v", c.pid(), err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c.ready, b[:]); err != nil || b[0] != '?' {
		t.Fatalf("child %d did not answer a ping: %q, %v", c.pid(), b[:], err)
	}
}

// waitExit reaps the child and returns how it ended, failing the test if
// it does not exit within failAfter.
func (c *child) waitExit(t testing.TB) syscall.WaitStatus {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(failAfter):
		c.cmd.Process.Kill()
		<-done
		t.Fatalf("child %d did not exit within %v", c.pid(), failAfter)
	}
	return c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// tree is a tree helper and the descendants it started.
type tree struct {
	*child
	// depth is each descendant's depth below the child: 1 for its
	// children.
	depth map[int]int
	procs []broker.Process
}

// startTree starts a tree helper with its descendants and waits until all
// are ready; setup, if not nil, adjusts the command first. Cleanup closes their stdin, which ends them all, and fails the
// test if any outlives it by failAfter (killing those that do).
func startTree(t testing.TB, h *Host, depth, fanout int, setup func(*exec.Cmd)) *tree {
	t.Helper()
	c := startHelper(t, "tree", func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d %d", treeEnv, depth, fanout))
		if setup != nil {
			setup(cmd)
		}
	})
	tr := &tree{child: c, depth: make(map[int]int)}
	for _, f := range c.readyLine(t) {
		pidText, depthText, _ := strings.Cut(f, ":")
		pid, err1 := strconv.Atoi(pidText)
		d, err2 := strconv.Atoi(depthText)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("tree helper: descendant %q: %v", f, err)
		}
		p, err := h.Lookup(pid)
		if err != nil {
			t.Fatalf("tree helper: descendant %d: %v", pid, err)
		}
		started.add(p)
		tr.depth[pid] = d
		tr.procs = append(tr.procs, p)
	}
	if want := treeSize(depth, fanout); len(tr.procs) != want {
		t.Fatalf("tree helper reported %d descendants; want %d", len(tr.procs), want)
	}
	t.Cleanup(func() { tr.end(t, h) })
	return tr
}

// treeSize is the number of descendants of a tree helper.
func treeSize(depth, fanout int) int {
	n, level := 0, 1
	for range depth {
		level *= fanout
		n += level
	}
	return n
}

// end closes the tree's stdin and waits for every descendant to exit.
func (tr *tree) end(t testing.TB, h *Host) {
	w, err := h.NewExitWatcher(10 * time.Millisecond)
	if err != nil {
		t.Errorf("exit watcher: %v", err)
		return
	}
	defer w.Close()
	left := make(map[procKey]broker.Process)
	for _, p := range tr.procs {
		if err := w.Add(p); err != nil {
			t.Errorf("watch %v: %v", p, err)
			continue
		}
		left[keyOf(p)] = p
	}
	tr.stdin.Close()
	timeout := time.After(failAfter)
	for len(left) > 0 {
		select {
		case p := <-w.Exits():
			delete(left, keyOf(p))
		case <-timeout:
			for _, p := range left {
				h.Kill(p)
			}
			t.Errorf("descendants still running %v after their stdin closed: %v", failAfter, left)
			return
		}
	}
}

// listenChild starts a listen helper on network and addr and returns it
// with its port.
func listenChild(t testing.TB, network, addr string) (*child, uint16) {
	t.Helper()
	c := startHelper(t, "listen", func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, netEnv+"="+network, addrEnv+"="+addr)
	})
	fields := c.readyLine(t)
	if len(fields) != 1 {
		t.Fatalf("listen helper: ready %q: want one port", fields)
	}
	port, err := strconv.ParseUint(fields[0], 10, 16)
	if err != nil {
		t.Fatalf("listen helper: port %q: %v", fields[0], err)
	}
	return c, uint16(port)
}

// haveIPv6Loopback reports whether this host can listen on ::1.
var haveIPv6Loopback = sync.OnceValue(func() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
})
