package main

import (
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// describePort prints an InspectPort answer for a person: the lease, each
// holder, whether the port binds and how to fix it, and where it sits
// among the host's ranges.
func (c *cli) describePort(w io.Writer, r *brokerpb.InspectPortResponse) {
	fmt.Fprintf(w, "port %d/%s\n", r.GetPort(), protocolName(r.GetProtocol()))
	field := func(key, format string, args ...any) {
		fmt.Fprintf(w, "  %-10s %s\n", key+":", printable(fmt.Sprintf(format, args...)))
	}
	if l := r.GetLease(); l != nil {
		line := fmt.Sprintf("%s/%s (id %s), owner %s", l.GetNamespace(), l.GetName(), l.GetId(), procName(l.GetOwnerPid(), l.GetOwnerName()))
		if l.GetLauncherPid() != 0 {
			line += fmt.Sprintf(", launched by pid %d", l.GetLauncherPid())
		}
		if l.GetCreatedAt() != nil {
			line += ", for " + age(c.now(), l.GetCreatedAt())
		}
		field("lease", "%s", line)
	} else {
		field("lease", "none")
	}
	holders := r.GetHolders()
	switch {
	case len(holders) > 0:
	case r.GetBind() == brokerpb.BindResult_BIND_RESULT_IN_USE:
		field("holders", "none visible (a process of another user, or one the OS does not show)")
	default:
		field("holders", "none")
	}
	for _, p := range holders {
		c.describeProcess(w, p)
	}
	if r.GetBind() == brokerpb.BindResult_BIND_RESULT_FREE {
		field("binds", "yes, it is free to bind now")
	} else {
		line := "no: " + bindWords(r.GetBind())
		if d := r.GetBindDetail(); d != "" {
			line += " (" + d + ")"
		}
		field("binds", "%s", line)
	}
	if r.GetFix() != "" {
		field("fix", "%s", r.GetFix())
	}
	field("ephemeral", "%s", ephemeralWords(r.GetEphemeralPosition(), r.GetEphemeralRange()))
	if ex := r.GetExcludedBy(); len(ex) > 0 {
		field("reserved", "inside %s: the OS or the broker's config keeps it from the pool", formatRanges(ex))
	} else {
		field("reserved", "in no reserved or excluded range")
	}
	if r.GetInPool() {
		field("pool", "in the broker's pool")
	} else {
		field("pool", "outside the broker's pool (it can still be leased by asking for it)")
	}
}

func (c *cli) describeProcess(w io.Writer, p *brokerpb.Process) {
	line := procName(p.GetPid(), p.GetName())
	if p.GetUser() != "" {
		line += ", user " + userName(p.GetUser())
	}
	if p.GetSystem() {
		line += ", a system process"
	}
	fmt.Fprintf(w, "  %-10s %s\n", "holder:", printable(line))
	sub := func(key, format string, args ...any) {
		fmt.Fprintf(w, "    %-9s %s\n", key+":", printable(fmt.Sprintf(format, args...)))
	}
	if cmd := p.GetCmdline(); len(cmd) > 0 {
		sub("command", "%s", strings.Join(cmd, " "))
	} else if p.GetExe() != "" {
		sub("command", "%s", p.GetExe())
	}
	sub("parent", "%s", parentWords(p))
	if a := p.GetLocalAddress(); a != "" {
		sub("address", "%s (%s)", a, protocolName(p.GetProtocol()))
	}
	if st := p.GetStartTime(); st != nil {
		sub("started", "%s (%s ago)", st.AsTime().Local().Format(time.RFC3339), age(c.now(), st))
	}
}

func parentWords(p *brokerpb.Process) string {
	switch {
	case p.GetOrphan() && p.GetParentPid() <= 1:
		return "none (adopted by init): an orphan, nobody is left to stop it"
	case p.GetOrphan():
		return fmt.Sprintf("pid %d, gone: an orphan, nobody is left to stop it", p.GetParentPid())
	case p.GetParentAlive():
		return fmt.Sprintf("pid %d, alive", p.GetParentPid())
	}
	return fmt.Sprintf("pid %d", p.GetParentPid())
}

func procName(pid int32, name string) string {
	if name == "" {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("pid %d (%s)", pid, printable(name))
}

// printable escapes what a process could put in its name or arguments to
// steer a terminal: control characters (C0, DEL, C1: escape sequences,
// carriage returns), bidirectional overrides that reorder what is shown,
// and bytes that are not UTF-8. Each becomes \xNN or \uNNNN.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x100 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f
}

// userName turns a uid or SID into "name (uid)" when this host knows it.
func userName(id string) string {
	if u, err := user.LookupId(id); err == nil && u.Username != "" && u.Username != id {
		return fmt.Sprintf("%s (%s)", printable(u.Username), printable(id))
	}
	return printable(id)
}

func bindWords(b brokerpb.BindResult) string {
	switch b {
	case brokerpb.BindResult_BIND_RESULT_FREE:
		return "free"
	case brokerpb.BindResult_BIND_RESULT_IN_USE:
		return "in use"
	case brokerpb.BindResult_BIND_RESULT_EXCLUDED_RANGE:
		return "in a range the OS excluded"
	case brokerpb.BindResult_BIND_RESULT_EXCLUSIVE_USE:
		return "another socket holds it for exclusive use"
	case brokerpb.BindResult_BIND_RESULT_PERMISSION:
		return "permission denied"
	}
	return "does not bind"
}

func ephemeralWords(pos brokerpb.EphemeralPosition, r *brokerpb.PortRange) string {
	rng := formatRange(r)
	switch pos {
	case brokerpb.EphemeralPosition_EPHEMERAL_POSITION_BELOW:
		return fmt.Sprintf("below the OS ephemeral range %s: outgoing connections will not take it", rng)
	case brokerpb.EphemeralPosition_EPHEMERAL_POSITION_INSIDE:
		return fmt.Sprintf("inside the OS ephemeral range %s: any outgoing connection may take it; prefer a port below %d", rng, r.GetFirst())
	case brokerpb.EphemeralPosition_EPHEMERAL_POSITION_ABOVE:
		return fmt.Sprintf("above the OS ephemeral range %s", rng)
	}
	return "the OS ephemeral range is unknown"
}

func stopWords(m brokerpb.StopMethod) string {
	switch m {
	case brokerpb.StopMethod_STOP_METHOD_GRACEFUL:
		return "stopped gracefully"
	case brokerpb.StopMethod_STOP_METHOD_FORCED:
		return "killed (forced stop)"
	case brokerpb.StopMethod_STOP_METHOD_ALREADY_EXITED:
		return "had already exited"
	}
	return "stopped"
}
