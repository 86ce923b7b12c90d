package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestPrefixer(t *testing.T) {
	for _, colour := range []bool{false, true} {
		var buf bytes.Buffer
		p := newPrefixer(&buf, []string{"up", "backend", "db"}, colour)
		p.line("db", 1, "ready")
		p.line("up", -1, "db ready")
		p.line("backend", 0, "")
		want := "db      | ready\nup      | db ready\nbackend | \n"
		if colour {
			want = "\x1b[33mdb      | \x1b[0mready\n\x1b[1mup      | \x1b[0mdb ready\n\x1b[36mbackend | \x1b[0m\n"
		}
		if buf.String() != want {
			t.Errorf("colour %v: output %q, want %q", colour, buf.String(), want)
		}
	}
}

func TestUseColour(t *testing.T) {
	var buf bytes.Buffer
	if useColour(&buf) {
		t.Error("colour for a buffer")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if useColour(f) {
		t.Error("colour for a regular file")
	}
	t.Setenv("NO_COLOR", "1")
	if useColour(os.Stdout) {
		t.Error("colour with NO_COLOR set")
	}
}

func TestParsePortOverrides(t *testing.T) {
	got, err := parsePortOverrides([]string{"backend=8001", "auth=1"})
	if err != nil || got["backend"] != 8001 || got["auth"] != 1 || len(got) != 2 {
		t.Errorf("parse = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"backend"}, {"=80"}, {"a=0"}, {"a=65536"}, {"a=x"}, {"a=1", "a=2"}} {
		if _, err := parsePortOverrides(bad); err == nil || !strings.HasPrefix(err.Error(), "--port") {
			t.Errorf("parse %q = %v, want a --port error", bad, err)
		}
	}
}
