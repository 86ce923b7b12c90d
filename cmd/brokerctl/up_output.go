package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// prefixer writes whole lines from many services to one writer, each
// prefixed with its service's padded name, coloured on a terminal.
type prefixer struct {
	mu     sync.Mutex
	w      io.Writer
	width  int
	colour bool
}

// palette is the ANSI colours services take in turn; up's own lines are
// bold.
var palette = []string{"36", "33", "32", "35", "34", "31", "96", "93", "92", "95"}

func newPrefixer(w io.Writer, names []string, colour bool) *prefixer {
	p := &prefixer{w: w, colour: colour}
	for _, n := range names {
		p.width = max(p.width, len(n))
	}
	return p
}

// line writes text as a line of name, the index-th service (-1: up).
func (p *prefixer) line(name string, index int, text string) {
	prefix := name + strings.Repeat(" ", p.width-len(name)) + " | "
	if p.colour {
		code := "1"
		if index >= 0 {
			code = palette[index%len(palette)]
		}
		prefix = "\x1b[" + code + "m" + prefix + "\x1b[0m"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// A service's output is its own; a write error (a closed stdout) must
	// not stop the stack, which would then never be cleaned up.
	_, _ = fmt.Fprintf(p.w, "%s%s\n", prefix, text)
}

// useColour reports whether w is a terminal that wants colour: NO_COLOR
// (any value) and TERM=dumb turn it off.
func useColour(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
