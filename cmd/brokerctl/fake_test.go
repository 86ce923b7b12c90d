package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// now is the clock of every command under test.
var now = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

type result struct {
	code           int
	stdout, stderr string
}

// brokerctl runs the command line in-process.
func brokerctl(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
	code := c.run(t.Context(), args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lines splits output into lines, each into whitespace-separated fields.
func lines(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Fields(line))
	}
	return out
}
