//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/client/clienttest"
)

// A daemon that autostart starts and that exits at once (here, over a
// typo in the config file) is reported at once, in one line, with its
// own error: the file, the line and the setting meant.
func TestAutoStartFailsFastWithTheDaemonsError(t *testing.T) {
	env := privateDefaults(t)
	var home string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_CONFIG_HOME="); ok {
			home = v
		}
	}
	file := filepath.Join(home, "portbroker", "portbroker.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("# my settings\ngrace: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := cliProcess(env, "status")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	msg := stderr.String()
	if code := cmd.ProcessState.ExitCode(); code != 1 || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line on stderr", code, stdout.String(), msg)
	}
	for _, want := range []string{
		"the portbrokerd it started exited (exit status 2)",
		"config " + file + ":2: unknown setting \"grace\"; did you mean \"reclaim.grace\"?",
		"portbrokerd.log",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "did not report healthy") {
		t.Errorf("stderr %q: autostart waited out its timeout instead of seeing the daemon exit", msg)
	}
	running, err := clienttest.Processes(clienttest.Binary(t))
	if err != nil || len(running) != 0 {
		t.Errorf("daemons running: %v, %v; want none", running, err)
	}
}
