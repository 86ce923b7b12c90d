package daemon

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/portbroker/portbroker/broker"
)

// validText makes a string from the OS (a process name, an executable
// path, an argument, a user) valid UTF-8, escaping each invalid byte as
// \xNN, so that it can go into a lease, the store and a gRPC message
// (protobuf strings must be UTF-8) and still show what the bytes were.
// Control characters stay: whoever prints them escapes them.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func validProcess(p broker.Process) broker.Process {
	p.Name = validText(p.Name)
	p.User = validText(p.User)
	return p
}

func validInfo(p broker.ProcessInfo) broker.ProcessInfo {
	p.Process = validProcess(p.Process)
	p.Exe = validText(p.Exe)
	p.LocalAddr = validText(p.LocalAddr)
	if len(p.Cmdline) > 0 {
		args := make([]string, len(p.Cmdline))
		for i, a := range p.Cmdline {
			args[i] = validText(a)
		}
		p.Cmdline = args
	}
	return p
}

func validInfos(ps []broker.ProcessInfo) []broker.ProcessInfo {
	for i := range ps {
		ps[i] = validInfo(ps[i])
	}
	return ps
}

// validProcesses is the host's process table with every string it
// returns made valid UTF-8 (see validText).
type validProcesses struct{ t broker.ProcessTable }

func (v validProcesses) Lookup(pid int) (broker.Process, error) {
	p, err := v.t.Lookup(pid)
	return validProcess(p), err
}

type validInspector struct{ i broker.ProcessInspector }

func (v validInspector) Inspect(pid int) (broker.ProcessInfo, error) {
	p, err := v.i.Inspect(pid)
	return validInfo(p), err
}

func (v validInspector) Descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	ps, err := v.i.Descendants(p)
	return validInfos(ps), err
}

type validHolders struct{ h broker.PortHolders }

func (v validHolders) Holders(port uint16, proto broker.Protocol) ([]broker.ProcessInfo, error) {
	ps, err := v.h.Holders(port, proto)
	return validInfos(ps), err
}
