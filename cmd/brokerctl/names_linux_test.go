package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/client"
)

// TestHostileProcessName: a holder whose name is not UTF-8 and carries a
// terminal escape sequence goes through who, doctor, acquire (as owner)
// and reclaim: every command works, prints the name with the escape and
// the bad bytes escaped, and never writes a raw control character.
func TestHostileProcessName(t *testing.T) {
	d, c := realDaemon(t)
	const raw = "\x1b[31m\xff\xfeevil" // 11 bytes: fits the kernel's 15
	// The daemon escapes the bytes that are not UTF-8; the CLI escapes the
	// control characters when it prints.
	const stored = "\x1b[31m" + `\xff\xfe` + "evil"
	const shown = `\x1b[31m\xff\xfeevil`
	h := helperChild(t, "listen", "HELPER_COMM="+raw)
	pid, port := ints(t, h.line)[0], strconv.Itoa(ints(t, h.line)[1])

	noRawControl := func(t *testing.T, what, out string) {
		t.Helper()
		for _, r := range out {
			if r < 0x20 && r != '\n' || r == 0x7f || r == 0xfffd {
				t.Errorf("%s wrote a raw control or replacement character %U:\n%q", what, r, out)
				return
			}
		}
	}

	who := brokerctl(t, "--addr", d.Addr, "who", port)
	if who.code != 0 || !strings.Contains(who.stdout, "pid "+strconv.Itoa(pid)+" ("+shown+")") {
		t.Errorf("who: exit %d, stdout %q, stderr %q; want the holder named %s", who.code, who.stdout, who.stderr, shown)
	}
	noRawControl(t, "who", who.stdout+who.stderr)

	whoJSON := brokerctl(t, "--addr", d.Addr, "who", port, "-o", "json")
	var doc struct {
		Holders []struct {
			Name string `json:"name"`
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(whoJSON.stdout), &doc); err != nil || len(doc.Holders) != 1 || doc.Holders[0].Name != stored {
		t.Errorf("who -o json: %v, holders %+v; want one holder named %q", err, doc.Holders, stored)
	}

	doctor := brokerctl(t, "--addr", d.Addr, "doctor", port)
	if doctor.code != 1 || !strings.Contains(doctor.stdout, shown) || strings.Contains(doctor.stdout+doctor.stderr, "UTF-8") {
		t.Errorf("doctor: exit %d, stdout %q, stderr %q; want 1 (not usable) naming %s", doctor.code, doctor.stdout, doctor.stderr, shown)
	}
	noRawControl(t, "doctor", doctor.stdout+doctor.stderr)

	l, err := c.Acquire(t.Context(), "hostile", client.WithOwnerPID(pid))
	if err != nil {
		t.Fatalf("acquire owned by the holder: %v", err)
	}
	if l.OwnerName != stored {
		t.Errorf("lease owner name = %q; want %q", l.OwnerName, stored)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}

	reclaim := brokerctl(t, "--addr", d.Addr, "reclaim", port, "--kill")
	if reclaim.code != 0 || !strings.Contains(reclaim.stdout, "pid "+strconv.Itoa(pid)+" ("+shown+") stopped") || !strings.Contains(reclaim.stdout, "port "+port+" is free") {
		t.Errorf("reclaim --kill: exit %d, stdout %q, stderr %q; want the holder stopped and the port free", reclaim.code, reclaim.stdout, reclaim.stderr)
	}
	noRawControl(t, "reclaim", reclaim.stdout+reclaim.stderr)
	waitGone(t, pid)
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"uvicorn", "uvicorn"},
		{"café ✓", "café ✓"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"a\rb\nc\td", `a\x0db\x0ac\x09d`},
		{"\x9b31m", `\x9b31m`},             // a C1 CSI byte, not UTF-8
		{"\u009b31m", `\x9b31m`},           // the C1 CSI as a rune
		{"abc\u202edcba", `abc\u202edcba`}, // right-to-left override
		{"\xff\xfe", `\xff\xfe`},
		{"\x7f", `\x7f`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
