//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
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

// waitFor polls until out contains want, up to failAfter.
func waitFor(t *testing.T, what string, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %v in:\n%s", what, want, failAfter, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leases --watch outlives a daemon restart: it says so in one line, prints
// the lease that ended while the daemon was down, does not print again
// what it printed before, and goes on with new events.
func TestLeasesWatchReconnectsAfterRestart(t *testing.T) {
	d, c := realDaemon(t)
	if _, err := c.Acquire(t.Context(), "before", client.WithOwnerPID(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	owner := exec.Command("sleep", "300")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })

	ctx, interrupt := context.WithCancel(t.Context())
	defer interrupt()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		cl := &cli{stdout: &stdout, stderr: &stderr, now: time.Now}
		exit <- cl.run(ctx, []string{"--addr", d.Addr, "leases", "--watch"})
	}()
	// The watch is on once an acquire shows; until then, keep trying.
	deadline := time.Now().Add(failAfter)
	for !strings.Contains(stdout.String(), "acquired default/probe ") {
		if time.Now().After(deadline) {
			t.Fatalf("the watch showed nothing in %v:\n%s%s", failAfter, stdout.String(), stderr.String())
		}
		if l, err := c.Acquire(t.Context(), "probe", client.WithOwnerPID(os.Getpid())); err == nil {
			time.Sleep(50 * time.Millisecond)
			if !strings.Contains(stdout.String(), "acquired default/probe ") {
				c.Release(t.Context(), l.ID)
			}
		}
	}
	if _, err := c.Acquire(t.Context(), "gone", client.WithOwnerPID(owner.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch", &stdout, "acquired default/gone ")
	c.Close()

	// The owner of gone dies while no daemon runs: the next daemon
	// reclaims the lease as it starts, with no event anyone could watch.
	d.Stop(t)
	waitFor(t, "the watch on losing the daemon", &stderr, "watching again when it is back")
	owner.Process.Kill()
	owner.Wait()
	restarted := exec.Command(clienttest.Binary(t), "--addr", d.Addr, "--state-dir", d.StateDir, "--range", d.Range)
	restarted.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(d.Dir, "config"), "HOME="+d.Dir, "PORTBROKER_CONFIG=")
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		restarted.Process.Signal(syscall.SIGTERM)
		restarted.Wait()
	})
	waitFor(t, "the watch after the restart", &stdout, "(while disconnected)")

	c2, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Acquire(t.Context(), "after", client.WithOwnerPID(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch after the restart", &stdout, "acquired default/after ")
	interrupt()
	if code := <-exit; code != 0 {
		t.Errorf("watch exit %d; want 0", code)
	}

	out := stdout.String()
	for _, name := range []string{"gone", "probe"} {
		if n := strings.Count(out, "acquired default/"+name+" "); n != 1 {
			t.Errorf("%s's acquire printed %d times, want once (not again after the restart):\n%s", name, n, out)
		}
	}
	if strings.Contains(out, "default/before ") {
		t.Errorf("a lease older than the watch was printed:\n%s", out)
	}
	if n := strings.Count(out, "(while disconnected)"); n != 1 || !strings.Contains(out, "released default/gone port=") {
		t.Errorf("the lease that ended while the daemon was down is not shown as such:\n%s", out)
	}
	if lines := strings.Count(stderr.String(), "\n"); lines != 1 {
		t.Errorf("stderr %q: want one line about the reconnection", stderr.String())
	}
}
