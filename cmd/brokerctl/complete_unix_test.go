//go:build unix

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
)

// completions runs the shell's completion request and returns the values
// offered (descriptions dropped) and the directive line.
func completions(t *testing.T, args ...string) (values []string, directive string) {
	t.Helper()
	r := brokerctl(t, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, lines[len(lines)-1]
}

func TestCompletionOfLiveLeases(t *testing.T) {
	file := filepath.Join(t.TempDir(), "portbroker.yaml")
	if err := os.WriteFile(file, []byte("services:\n  frontend: {port: 3000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := clienttest.Start(t, clienttest.Binary(t), "--config", file)
	c, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	web, err := c.Acquire(t.Context(), "web", client.WithOwnerPID(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	api, err := c.Acquire(t.Context(), "api", client.WithOwnerPID(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	webPort, apiPort := strconv.Itoa(web.Port), strconv.Itoa(api.Port)

	got, dir := completions(t, "--addr", d.Addr, "release", "")
	for _, want := range []string{"web", "api", web.ID, api.ID, webPort, apiPort} {
		if !slices.Contains(got, want) {
			t.Errorf("release completions %q lack %q", got, want)
		}
	}
	if dir != ":4" {
		t.Errorf("directive %q; want :4 (no file completion)", dir)
	}
	if got, _ := completions(t, "--addr", d.Addr, "release", "w"); !slices.Equal(got, []string{"web"}) {
		t.Errorf("release w completions %q; want [web]", got)
	}
	if got, _ := completions(t, "--addr", d.Addr, "release", "web", ""); len(got) != 0 {
		t.Errorf("second release argument completions %q; want none", got)
	}
	got, _ = completions(t, "--addr", d.Addr, "who", webPort, "")
	if !slices.Equal(got, []string{apiPort}) {
		t.Errorf("who %s completions %q; want only the other leased port %s", webPort, got, apiPort)
	}
	if got, _ := completions(t, "--addr", d.Addr, "reclaim", ""); !slices.Contains(got, webPort) || !slices.Contains(got, apiPort) {
		t.Errorf("reclaim completions %q; want both leased ports", got)
	}
	if got, _ := completions(t, "--addr", d.Addr, "acquire", ""); !slices.Contains(got, "web") || !slices.Contains(got, "frontend") || slices.Contains(got, web.ID) {
		t.Errorf("acquire completions %q; want lease and configured service names only", got)
	}
}

// Without a daemon, completion offers nothing, says nothing and starts
// none.
func TestCompletionWithoutADaemon(t *testing.T) {
	if got, dir := completions(t, "--addr", clienttest.DeadAddr(t), "release", ""); len(got) != 0 || dir != ":4" {
		t.Errorf("completions %q, directive %q; want none and :4", got, dir)
	}
	env := privateDefaults(t)
	cmd := cliProcess(env, "__complete", "release", "")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != ":4" {
		t.Errorf("__complete release with no daemon at the default address: %v, output %q; want only :4", err, out)
	}
	running, err := clienttest.Processes(clienttest.Binary(t))
	if err != nil || len(running) != 0 {
		t.Errorf("daemons running after completion: %v, %v; want none", running, err)
		stopDaemons(t, running)
	}
}
