//go:build unix

// The examples run as the README says, against a real daemon.
package examples_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
)

// failAfter bounds waits on the examples; it only matters when one hangs.
const failAfter = 30 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.daemon != "" {
		pids, err := clienttest.Processes(bins.daemon)
		if err != nil || len(pids) > 0 {
			fmt.Fprintf(os.Stderr, "portbrokerd left running: %v %v\n", pids, err)
			code = 1
		}
	}
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

var bins struct {
	once                        sync.Once
	dir, daemon, cli, goservice string
	err                         error
}

// build builds the daemon, brokerctl and the Go example once.
func build(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "pbbin"); bins.err != nil {
			return
		}
		const mod = "github.com/portbroker/portbroker/"
		for _, b := range []struct {
			path string
			dst  *string
		}{
			{mod + "cmd/portbrokerd", &bins.daemon},
			{mod + "cmd/brokerctl", &bins.cli},
			{mod + "examples/goservice", &bins.goservice},
		} {
			if *b.dst, bins.err = clienttest.Build(context.Background(), bins.dir, b.path); bins.err != nil {
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

func daemonClient(t *testing.T) (*clienttest.Daemon, *client.Client) {
	t.Helper()
	build(t)
	d := clienttest.Start(t, bins.daemon)
	c, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

// readLine reads a line from a child's stdout, failing the test after
// failAfter.
func readLine(t *testing.T, r *bufio.Reader, f *os.File) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(failAfter))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read the example's output: %v (so far %q)", err, line)
	}
	return strings.TrimSpace(line)
}

func get(t *testing.T, url string) string {
	t.Helper()
	// The launcher announces a service once its lease is granted; the
	// service binds a moment later, so a refused connection is retried.
	deadline := time.Now().Add(20 * time.Second)
	resp, err := http.Get(url)
	for err != nil && errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		resp, err = http.Get(url)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(body)
}

func TestGoService(t *testing.T) {
	d, c := daemonClient(t)
	cmd := exec.Command(bins.goservice, "-name", "api")
	cmd.Env = append(os.Environ(), "PORTBROKER_ADDR="+d.Addr)
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

	line := readLine(t, bufio.NewReader(out), out.(*os.File))
	url, ok := strings.CutPrefix(line, "api serving on ")
	if !ok {
		t.Fatalf("goservice said %q", line)
	}
	leases, err := c.List(t.Context(), "")
	if err != nil || len(leases) != 1 || leases[0].Name != "api" || leases[0].OwnerPID != cmd.Process.Pid {
		t.Fatalf("leases %v, %v; want api owned by goservice (pid %d)", leases, err, cmd.Process.Pid)
	}
	port := strconv.Itoa(leases[0].Port)
	if want := "http://localhost:" + port + "/"; url != want {
		t.Errorf("serving on %s, want the leased %s", url, want)
	}
	if body := get(t, url); body != "hello from api on port "+port+"\n" {
		t.Errorf("GET / = %q", body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("goservice after SIGTERM: %v; stderr %q", err, stderr.String())
	}
	if leases, _ := c.List(t.Context(), ""); len(leases) != 0 {
		t.Errorf("leases after shutdown: %v; want none", leases)
	}
}

// TestStack runs the stack of portbroker.yaml, and of procfile/Procfile,
// through brokerctl up: every service serves, the frontend reaches the
// backend through {port:backend}, and Ctrl-C leaves nothing behind.
func TestStack(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skipf("the stack's services are python3: %v", err)
	}
	for _, tt := range []struct {
		name string
		dir  string
		args []string
	}{
		// --dynamic: the test must not depend on 8000, 3000 and 8081
		// being free on this machine.
		{"portbroker.yaml", ".", []string{"--dynamic"}},
		{"Procfile", "procfile", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, c := daemonClient(t)
			cmd := exec.Command(bins.cli, append([]string{"up"}, tt.args...)...)
			cmd.Dir = tt.dir
			cmd.Env = append(os.Environ(), "PORTBROKER_ADDR="+d.Addr, "NO_COLOR=1")
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

			r := bufio.NewReader(out)
			urls := map[string]string{}
			var seen []string
			for len(urls) < 3 {
				line := readLine(t, r, out.(*os.File))
				seen = append(seen, line)
				who, text, _ := strings.Cut(line, " | ")
				if strings.TrimSpace(who) != "up" {
					continue
				}
				if name, url, ok := strings.Cut(text, " ready: "); ok {
					urls[name] = url
				}
			}
			if body := get(t, urls["frontend"]+"/"); !strings.Contains(body, "backend at http://127.0.0.1:"+strings.TrimPrefix(urls["backend"], "http://localhost:")+" answered 200") {
				t.Errorf("frontend at %s said %q; want it to reach the backend at %s", urls["frontend"], body, urls["backend"])
			}
			if body := get(t, urls["auth"]+"/"); !strings.Contains(body, "<html") && !strings.Contains(body, "<!DOCTYPE") {
				t.Errorf("auth at %s served %.80q, not http.server's listing", urls["auth"], body)
			}
			leases, err := c.List(t.Context(), "")
			if err != nil || len(leases) != 3 {
				t.Fatalf("leases %v, %v; want the three services\n%s", leases, err, strings.Join(seen, "\n"))
			}

			// Ctrl-C.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(r)
			if err := cmd.Wait(); err != nil || !strings.Contains(string(rest), "stopped; leases released") {
				t.Errorf("brokerctl up after Ctrl-C: %v, output %q, stderr %q", err, rest, stderr.String())
			}
			if left, _ := c.List(t.Context(), ""); len(left) != 0 {
				t.Errorf("leases after Ctrl-C: %v; want none", left)
			}
			for _, l := range leases {
				if syscall.Kill(l.OwnerPID, 0) == nil {
					t.Errorf("%s (pid %d) still runs after Ctrl-C", l.Name, l.OwnerPID)
				}
			}
		})
	}
}
