package daemon

import (
	"testing"
	"unicode/utf8"

	"github.com/portbroker/portbroker/broker"
)

func TestValidText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"uvicorn", "uvicorn"},
		{"café", "café"},
		{"\x1b[31m", "\x1b[31m"}, // valid UTF-8 stays; printers escape controls
		{"\xff\xfeevil", `\xff\xfeevil`},
		{"caf\xc3", `caf\xc3`},           // a truncated sequence
		{"\xed\xa0\x80", `\xed\xa0\x80`}, // a surrogate, not UTF-8
	}
	for _, tt := range tests {
		got := validText(tt.in)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("validText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// badStrings returns processes whose strings are not UTF-8.
type badStrings struct{}

func (badStrings) Lookup(pid int) (broker.Process, error) {
	return broker.Process{PID: pid, Name: "\xff", User: "\xfe"}, nil
}

func (badStrings) Inspect(pid int) (broker.ProcessInfo, error) {
	return broker.ProcessInfo{Process: broker.Process{PID: pid, Name: "\xff"}, Exe: "/bin/\xff", Cmdline: []string{"a", "\xfe"}, LocalAddr: "\xff"}, nil
}

func (badStrings) Descendants(broker.Process) ([]broker.ProcessInfo, error) {
	return []broker.ProcessInfo{{Process: broker.Process{Name: "\xff"}, Cmdline: []string{"\xfe"}}}, nil
}

func (badStrings) Holders(uint16, broker.Protocol) ([]broker.ProcessInfo, error) {
	return []broker.ProcessInfo{{Process: broker.Process{Name: "\xff"}, Exe: "\xff"}}, nil
}

func TestHostWrappersMakeStringsValid(t *testing.T) {
	valid := func(what string, ss ...string) {
		for _, s := range ss {
			if !utf8.ValidString(s) {
				t.Errorf("%s: %q is not UTF-8", what, s)
			}
		}
	}
	p, _ := validProcesses{badStrings{}}.Lookup(7)
	valid("Lookup", p.Name, p.User)
	i, _ := validInspector{badStrings{}}.Inspect(7)
	valid("Inspect", append([]string{i.Name, i.Exe, i.LocalAddr}, i.Cmdline...)...)
	ds, _ := validInspector{badStrings{}}.Descendants(broker.Process{})
	valid("Descendants", append([]string{ds[0].Name}, ds[0].Cmdline...)...)
	hs, _ := validHolders{badStrings{}}.Holders(1, broker.TCP)
	valid("Holders", hs[0].Name, hs[0].Exe)
}
