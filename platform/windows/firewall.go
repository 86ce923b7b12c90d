package windows

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/portbroker/portbroker/broker"
)

// FirewallRulePrefix begins the name of every firewall rule the broker
// creates. The broker lists and deletes only rules whose names begin with
// it, so it never touches a rule it did not make.
const FirewallRulePrefix = "portbroker:"

// FirewallRule is an inbound allow rule the broker manages. Its name,
// portbroker:<port>/<protocol>[:<lease ID>] (protocol tcp, udp or tcp+udp),
// carries every field but the program, so that the rule is recognised in
// netsh's localized listing without reading a single label. A tcp+udp rule
// is two Windows rules with the same name, one per protocol, and is listed
// and deleted as one.
type FirewallRule struct {
	// Name is chosen by the broker from the other fields.
	Name     string
	Port     uint16
	Protocol broker.Protocol
	// Program scopes the rule to one executable, by absolute path; empty
	// allows any program.
	Program string
	// LeaseID is the lease the rule was opened for, if any.
	LeaseID string
}

// maxLeaseIDLen bounds a lease ID in a rule name; Windows caps rule names at
// 1024 characters.
const maxLeaseIDLen = 64

// firewallRuleName names the rule for port, proto and leaseID.
func firewallRuleName(port uint16, proto broker.Protocol, leaseID string) string {
	name := FirewallRulePrefix + strconv.Itoa(int(port)) + "/" + proto.String()
	if leaseID != "" {
		name += ":" + leaseID
	}
	return name
}

// parseFirewallRuleName reads a name firewallRuleName made; ok is false for
// any other name, including malformed ones with the prefix.
func parseFirewallRuleName(name string) (r FirewallRule, ok bool) {
	rest, ok := strings.CutPrefix(name, FirewallRulePrefix)
	if !ok {
		return FirewallRule{}, false
	}
	portStr, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return FirewallRule{}, false
	}
	protoStr, lease, hasLease := strings.Cut(rest, ":")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 || strconv.FormatUint(port, 10) != portStr {
		return FirewallRule{}, false
	}
	var proto broker.Protocol
	for _, p := range []broker.Protocol{broker.TCP, broker.UDP, broker.TCPUDP} {
		if protoStr == p.String() {
			proto = p
		}
	}
	if proto == 0 || hasLease && checkLeaseID(lease) != nil || hasLease && lease == "" {
		return FirewallRule{}, false
	}
	return FirewallRule{Name: name, Port: uint16(port), Protocol: proto, LeaseID: lease}, true
}

func checkLeaseID(id string) error {
	if len(id) > maxLeaseIDLen {
		return &broker.FieldError{Field: "lease id", Rule: fmt.Sprintf("must be at most %d characters", maxLeaseIDLen)}
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return &broker.FieldError{Field: "lease id", Rule: fmt.Sprintf("may hold only letters, digits, '-', '_' and '.', not %q", c)}
		}
	}
	return nil
}

// checkProgram accepts an absolute Windows path that netsh can take in
// double quotes: a drive path (C:\dir\app.exe) or a UNC path
// (\\server\share\app.exe), with no quote or control character, not ending
// in a backslash (which would escape the closing quote).
func checkProgram(p string) error {
	bad := func(rule string) error { return &broker.FieldError{Field: "program", Rule: rule} }
	switch {
	case p == "":
		return nil
	case !drivePath.MatchString(p) && !strings.HasPrefix(p, `\\`):
		return bad(fmt.Sprintf("must be an absolute path such as C:\\dev\\app.exe, not %q", p))
	case strings.HasSuffix(p, `\`):
		return bad("must name a file, not end in a backslash")
	case len(p) > 32767:
		return bad("must be at most 32767 characters")
	}
	for _, c := range p {
		if c == '"' || c < 0x20 || c == 0x7f {
			return bad(fmt.Sprintf("must not contain %q", c))
		}
	}
	return nil
}

var drivePath = regexp.MustCompile(`^[A-Za-z]:\\`)

// checked validates r and sets its name.
func (r FirewallRule) checked() (FirewallRule, error) {
	switch {
	case r.Port == 0:
		return r, &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}
	case !r.Protocol.Valid():
		return r, &broker.FieldError{Field: "protocol", Rule: "must be tcp, udp or tcp+udp"}
	}
	if err := checkLeaseID(r.LeaseID); err != nil {
		return r, err
	}
	if err := checkProgram(r.Program); err != nil {
		return r, err
	}
	name := firewallRuleName(r.Port, r.Protocol, r.LeaseID)
	if r.Name != "" && r.Name != name {
		return r, &broker.FieldError{Field: "name", Rule: fmt.Sprintf("is chosen by the broker (%s), not %q", name, r.Name)}
	}
	r.Name = name
	return r, nil
}

// netsh command lines, without the program name. Values go in double
// quotes, the form netsh documents; checked rules hold no quote to escape.
const (
	firewallShowRules   = `advfirewall firewall show rule name=all dir=in verbose`
	firewallDescription = "managed by portbrokerd"
)

// addRuleCommands returns the netsh commands that create r, one per
// protocol.
func addRuleCommands(r FirewallRule) []string {
	var cmds []string
	for _, p := range []broker.Protocol{broker.TCP, broker.UDP} {
		if r.Protocol != p && r.Protocol != broker.TCPUDP {
			continue
		}
		c := fmt.Sprintf(`advfirewall firewall add rule name="%s" dir=in action=allow protocol=%s localport=%d profile=any enable=yes description="%s"`,
			r.Name, strings.ToUpper(p.String()), r.Port, firewallDescription)
		if r.Program != "" {
			c += fmt.Sprintf(` program="%s"`, r.Program)
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// deleteRuleCommand returns the netsh command that deletes the inbound
// rules named name.
func deleteRuleCommand(name string) string {
	return fmt.Sprintf(`advfirewall firewall delete rule name="%s" dir=in`, name)
}

// parseFirewallRules reads the output of `netsh advfirewall firewall show
// rule name=all dir=in verbose` and returns the broker's rules, in order,
// one per name.
//
// netsh prints each rule as a block: a "label: name" line, a line of dashes,
// then "label: value" lines. The labels are translated ("Rule Name:",
// "Regelname:", ...) and printed in the console's code page, so this reads
// none of them. It relies on two things that hold in every language:
//
//   - A rule's block starts at the line just above a line of dashes, and
//     that line ends with the rule's name. Ours start with
//     FirewallRulePrefix, and the name carries the port, protocol and lease.
//   - In a block of ours, the only value that is an absolute path is the
//     program: we set no other field that could hold one (the description
//     is fixed, and there is no service or group).
func parseFirewallRules(out string) []FirewallRule {
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	header := func(i int) bool { return i+1 < len(lines) && isDashes(lines[i+1]) }
	var (
		rules  []FirewallRule
		byName = map[string]int{}
		cur    = -1 // index in rules of the block being read, or -1
	)
	for i := 0; i < len(lines); i++ {
		if header(i) {
			cur = -1
			i++ // the dashes
			name, ok := ruleNameIn(lines[i-1])
			if !ok {
				continue
			}
			r, ok := parseFirewallRuleName(name)
			if !ok {
				continue
			}
			if j, seen := byName[name]; seen {
				cur = j
				continue
			}
			byName[name] = len(rules)
			cur = len(rules)
			rules = append(rules, r)
			continue
		}
		if cur < 0 || rules[cur].Program != "" {
			continue
		}
		if m := pathValue.FindStringSubmatch(lines[i]); m != nil {
			rules[cur].Program = strings.TrimSpace(m[1])
		}
	}
	return rules
}

// pathValue finds a value that is an absolute path at the end of a line: a
// drive or UNC path, or one starting with an environment variable, the form
// Windows may store a path under a known folder in.
var pathValue = regexp.MustCompile(`\s([A-Za-z]:\\.*|\\\\[^\\\s].*|%[A-Za-z0-9_()]+%\\.*)$`)

// ruleNameIn returns the rule name a header line ends with, if it is one
// of ours: the name must be the whole value, so FirewallRulePrefix must
// follow the label's colon and padding directly. (Every language netsh
// speaks ends its labels with an ASCII colon.)
func ruleNameIn(line string) (string, bool) {
	i := strings.Index(line, FirewallRulePrefix)
	if i < 0 || !strings.HasSuffix(strings.TrimRight(line[:i], " \t"), ":") {
		return "", false
	}
	return strings.TrimSpace(line[i:]), true
}

func isDashes(line string) bool {
	line = strings.TrimSpace(line)
	return len(line) >= 3 && strings.Trim(line, "-") == ""
}

// firewall manages the broker's rules with netsh.
type firewall struct {
	// netsh runs netsh with this command line after the program name.
	netsh func(ctx context.Context, cmdline string) (string, error)
	// elevated reports whether this process may change the firewall.
	elevated func() bool
}

// errNotElevated is what changing the firewall without elevation returns.
var errNotElevated = fmt.Errorf("%w: changing Windows Firewall rules needs an elevated process; run as administrator", broker.ErrPermission)

// open creates the inbound allow rule r describes, replacing any rule of
// the same name, and returns it with its name.
func (f firewall) open(ctx context.Context, r FirewallRule) (FirewallRule, error) {
	r, err := r.checked()
	if err != nil {
		return FirewallRule{}, err
	}
	if !f.elevated() {
		return FirewallRule{}, fmt.Errorf("open firewall rule %s: %w", r.Name, errNotElevated)
	}
	// netsh fails, in the console's language, when no rule matches, so
	// the outcome of this delete says nothing worth reporting.
	f.netsh(ctx, deleteRuleCommand(r.Name))
	for _, c := range addRuleCommands(r) {
		if _, err := f.netsh(ctx, c); err != nil {
			// Leave no half of a tcp+udp rule behind.
			f.netsh(ctx, deleteRuleCommand(r.Name))
			return FirewallRule{}, fmt.Errorf("open firewall rule %s: %w", r.Name, err)
		}
	}
	return r, nil
}

// list returns the broker's inbound rules.
func (f firewall) list(ctx context.Context) ([]FirewallRule, error) {
	out, err := f.netsh(ctx, firewallShowRules)
	if err != nil {
		return nil, fmt.Errorf("list firewall rules: %w", err)
	}
	return parseFirewallRules(out), nil
}

// close deletes the broker's rules for port that cover any protocol proto
// covers, and returns them. A tcp+udp rule goes as a whole.
func (f firewall) close(ctx context.Context, port uint16, proto broker.Protocol) ([]FirewallRule, error) {
	switch {
	case port == 0:
		return nil, &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}
	case !proto.Valid():
		return nil, &broker.FieldError{Field: "protocol", Rule: "must be tcp, udp or tcp+udp"}
	case !f.elevated():
		return nil, fmt.Errorf("close firewall rules for port %d/%s: %w", port, proto, errNotElevated)
	}
	rules, err := f.list(ctx)
	if err != nil {
		return nil, err
	}
	var removed []FirewallRule
	for _, r := range rules {
		if r.Port != port || !(r.Protocol.HasTCP() && proto.HasTCP() || r.Protocol.HasUDP() && proto.HasUDP()) {
			continue
		}
		if _, err := f.netsh(ctx, deleteRuleCommand(r.Name)); err != nil {
			return removed, fmt.Errorf("delete firewall rule %s: %w", r.Name, err)
		}
		removed = append(removed, r)
	}
	return removed, nil
}

// closeRule deletes the broker's rule called name, and only it, and returns
// it; found is false when there is no such rule. A lease's cleanup uses it,
// so a rule opened for the same port without that lease stays.
func (f firewall) closeRule(ctx context.Context, name string) (rule FirewallRule, found bool, err error) {
	if _, ok := parseFirewallRuleName(name); !ok {
		return FirewallRule{}, false, &broker.FieldError{Field: "name", Rule: fmt.Sprintf("must be a rule name the broker makes (%s<port>/<protocol>[:<lease ID>]), not %q", FirewallRulePrefix, name)}
	}
	if !f.elevated() {
		return FirewallRule{}, false, fmt.Errorf("close firewall rule %s: %w", name, errNotElevated)
	}
	rules, err := f.list(ctx)
	if err != nil {
		return FirewallRule{}, false, err
	}
	for _, r := range rules {
		if r.Name != name {
			continue
		}
		if _, err := f.netsh(ctx, deleteRuleCommand(r.Name)); err != nil {
			return FirewallRule{}, false, fmt.Errorf("delete firewall rule %s: %w", r.Name, err)
		}
		return r, true, nil
	}
	return FirewallRule{}, false, nil
}
