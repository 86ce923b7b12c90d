package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// upOutput is brokerctl up's standard output as a test reads it: each line
// as it comes, and the lines read so far.
type upOutput struct {
	lines chan string
	seen  []string
	// errOut is up's standard error, for failure messages.
	errOut fmt.Stringer
}

// readUpOutput reads out's lines, without a trailing \r, until out ends.
func readUpOutput(out io.Reader, errOut fmt.Stringer) upOutput {
	o := upOutput{lines: make(chan string, 1000), errOut: errOut}
	go func() {
		defer close(o.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			o.lines <- strings.TrimRight(sc.Text(), "\r")
		}
	}()
	return o
}

// line waits for a line of service (or "up") whose text starts with
// prefix, and returns the text.
func (u *upOutput) line(t *testing.T, service, prefix string) string {
	t.Helper()
	match := func(l string) (string, bool) {
		name, text, _ := strings.Cut(l, " | ")
		return text, strings.TrimSpace(name) == service && strings.HasPrefix(text, prefix)
	}
	for _, l := range u.seen {
		if text, ok := match(l); ok {
			return text
		}
	}
	timeout := time.After(failAfter)
	for {
		select {
		case l, ok := <-u.lines:
			if !ok {
				t.Fatalf("up ended before %s said %q; output:\n%s\nstderr: %s", service, prefix, strings.Join(u.seen, "\n"), u.errOut)
			}
			u.seen = append(u.seen, l)
			if text, ok := match(l); ok {
				return text
			}
		case <-timeout:
			t.Fatalf("%s did not say %q within %v; output:\n%s\nstderr: %s", service, prefix, failAfter, strings.Join(u.seen, "\n"), u.errOut)
		}
	}
}
