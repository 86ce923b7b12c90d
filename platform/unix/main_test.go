//go:build linux || darwin

package unix

import (
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

// childEnv switches the test binary into a child process that prints
// "ready", then waits for its stdin to close (or to be killed). Tying its
// life to the pipe means a crashed test run leaves no child behind.
const childEnv = "PORTBROKER_UNIX_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "wait" {
		os.Stdout.WriteString("ready\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin *os.File
	ready *os.File
}

// startChild starts a helper process without waiting for it to be ready.
// Cleanup kills and reaps it.
func startChild(t testing.TB) *child {
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
	cmd.Env = append(os.Environ(), childEnv+"=wait")
	// *os.File streams need no copying goroutines.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: inW, ready: outR}
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
