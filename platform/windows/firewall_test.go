package windows

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

// fixtureRules are the broker's rules in testdata/firewall-{en,de}.txt,
// which also hold rules of others, one named by a path right after ours,
// one that borrows the prefix in a name we never make, and one whose name
// only contains it. The fixtures follow netsh's layout and labels (German
// in code page 850); they were written for these tests, not captured, since
// Wine's netsh prints nothing. TestFirewallLive checks the real thing.
var fixtureRules = []FirewallRule{
	{Name: "portbroker:8000/tcp:3f2a9c01b7e4d655", Port: 8000, Protocol: broker.TCP, LeaseID: "3f2a9c01b7e4d655",
		Program: `C:\Users\dev\My Projects\api\.venv\Scripts\python.exe`},
	{Name: "portbroker:5353/tcp+udp", Port: 5353, Protocol: broker.TCPUDP},
	{Name: "portbroker:9000/udp", Port: 9000, Protocol: broker.UDP, Program: `\\buildbox\tools\relay.exe`},
}

func TestParseFirewallRules(t *testing.T) {
	tests := []struct {
		fixture string
		want    []FirewallRule
	}{
		{"firewall-en.txt", fixtureRules},
		// Labels in German, in code page 850.
		{"firewall-de.txt", fixtureRules},
		{"firewall-en-none.txt", nil},
		{"wine-empty.txt", nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got := parseFirewallRules(fixture(t, tt.fixture))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFirewallRulesLineEndings(t *testing.T) {
	lf := strings.ReplaceAll(fixture(t, "firewall-en.txt"), "\r\n", "\n")
	if diff := cmp.Diff(fixtureRules, parseFirewallRules(lf)); diff != "" {
		t.Errorf("rules from LF output (-want +got):\n%s", diff)
	}
}

func TestPathValue(t *testing.T) {
	tests := []struct{ line, want string }{
		{`Program:                              C:\Program Files\app\app.exe`, `C:\Program Files\app\app.exe`},
		{`Programm:                             \\srv\share\a b.exe`, `\\srv\share\a b.exe`},
		{`Program:                              %USERPROFILE%\dev\api.exe`, `%USERPROFILE%\dev\api.exe`},
		{`Nom du programme :                    d:\x.exe  `, `d:\x.exe`},
		{`LocalPort:                            8000`, ""},
		{`Description:                          managed by portbrokerd`, ""},
		{`Rule source:                          Local Setting`, ""},
		{`Program:C:\nospace.exe`, ""},
	}
	for _, tt := range tests {
		got := ""
		if m := pathValue.FindStringSubmatch(tt.line); m != nil {
			got = strings.TrimSpace(m[1])
		}
		if got != tt.want {
			t.Errorf("path in %q = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestParseFirewallRuleName(t *testing.T) {
	tests := []struct {
		name string
		want FirewallRule
		ok   bool
	}{
		{"portbroker:8000/tcp", FirewallRule{Port: 8000, Protocol: broker.TCP}, true},
		{"portbroker:1/udp:a.b-c_d", FirewallRule{Port: 1, Protocol: broker.UDP, LeaseID: "a.b-c_d"}, true},
		{"portbroker:65535/tcp+udp:0123456789abcdef", FirewallRule{Port: 65535, Protocol: broker.TCPUDP, LeaseID: "0123456789abcdef"}, true},
		{"portbroker:0/tcp", FirewallRule{}, false},
		{"portbroker:65536/tcp", FirewallRule{}, false},
		{"portbroker:08000/tcp", FirewallRule{}, false},
		{"portbroker:+80/tcp", FirewallRule{}, false},
		{"portbroker:8000/TCP", FirewallRule{}, false},
		{"portbroker:8000/sctp", FirewallRule{}, false},
		{"portbroker:8000", FirewallRule{}, false},
		{"portbroker:8000/tcp:", FirewallRule{}, false},
		{"portbroker:8000/tcp:has space", FirewallRule{}, false},
		{"portbroker:8000/tcp:" + strings.Repeat("x", 65), FirewallRule{}, false},
		{"Portbroker:8000/tcp", FirewallRule{}, false},
		{"other:8000/tcp", FirewallRule{}, false},
	}
	for _, tt := range tests {
		got, ok := parseFirewallRuleName(tt.name)
		if ok != tt.ok {
			t.Errorf("parseFirewallRuleName(%q) ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if ok {
			tt.want.Name = tt.name
			if got != tt.want {
				t.Errorf("parseFirewallRuleName(%q) = %+v, want %+v", tt.name, got, tt.want)
			}
			if again := firewallRuleName(got.Port, got.Protocol, got.LeaseID); again != tt.name {
				t.Errorf("name %q does not round-trip: %q", tt.name, again)
			}
		}
	}
}

func TestFirewallRuleChecked(t *testing.T) {
	tests := []struct {
		rule      FirewallRule
		wantName  string
		wantField string
		wantRule  string
	}{
		{rule: FirewallRule{Port: 8000, Protocol: broker.TCP}, wantName: "portbroker:8000/tcp"},
		{rule: FirewallRule{Port: 8000, Protocol: broker.TCPUDP, LeaseID: "abc", Program: `D:\a b\c.exe`}, wantName: "portbroker:8000/tcp+udp:abc"},
		{rule: FirewallRule{Name: "portbroker:8000/udp", Port: 8000, Protocol: broker.UDP, Program: `\\srv\share\x.exe`}, wantName: "portbroker:8000/udp"},
		{rule: FirewallRule{Protocol: broker.TCP}, wantField: "port", wantRule: "from 1 to 65535"},
		{rule: FirewallRule{Port: 1}, wantField: "protocol", wantRule: "tcp, udp or tcp+udp"},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, LeaseID: "a/b"}, wantField: "lease id", wantRule: `not '/'`},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, LeaseID: strings.Repeat("a", 65)}, wantField: "lease id", wantRule: "at most 64"},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, Program: "app.exe"}, wantField: "program", wantRule: "absolute path"},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, Program: `\dir\app.exe`}, wantField: "program", wantRule: "absolute path"},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, Program: `C:\dir\`}, wantField: "program", wantRule: "not end in a backslash"},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, Program: `C:\a" dir=out "b.exe`}, wantField: "program", wantRule: `not contain '"'`},
		{rule: FirewallRule{Port: 1, Protocol: broker.TCP, Program: "C:\\a\nb.exe"}, wantField: "program", wantRule: `not contain '\n'`},
		{rule: FirewallRule{Name: "open everything", Port: 1, Protocol: broker.TCP}, wantField: "name", wantRule: "chosen by the broker (portbroker:1/tcp)"},
	}
	for _, tt := range tests {
		got, err := tt.rule.checked()
		if tt.wantField == "" {
			if err != nil || got.Name != tt.wantName {
				t.Errorf("%+v.checked() = %+v, %v; want name %q", tt.rule, got, err, tt.wantName)
			}
			continue
		}
		var fe *broker.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.wantField || !strings.Contains(fe.Rule, tt.wantRule) {
			t.Errorf("%+v.checked() = %v; want a %q field error containing %q", tt.rule, err, tt.wantField, tt.wantRule)
		}
	}
}

func TestAddRuleCommands(t *testing.T) {
	const common = `dir=in action=allow`
	tests := []struct {
		rule FirewallRule
		want []string
	}{
		{FirewallRule{Name: "portbroker:8000/tcp", Port: 8000, Protocol: broker.TCP}, []string{
			`advfirewall firewall add rule name="portbroker:8000/tcp" ` + common + ` protocol=TCP localport=8000 profile=any enable=yes description="managed by portbrokerd"`,
		}},
		{FirewallRule{Name: "portbroker:53/tcp+udp:l1", Port: 53, Protocol: broker.TCPUDP, LeaseID: "l1", Program: `C:\Program Files\dns\dns.exe`}, []string{
			`advfirewall firewall add rule name="portbroker:53/tcp+udp:l1" ` + common + ` protocol=TCP localport=53 profile=any enable=yes description="managed by portbrokerd" program="C:\Program Files\dns\dns.exe"`,
			`advfirewall firewall add rule name="portbroker:53/tcp+udp:l1" ` + common + ` protocol=UDP localport=53 profile=any enable=yes description="managed by portbrokerd" program="C:\Program Files\dns\dns.exe"`,
		}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, addRuleCommands(tt.rule)); diff != "" {
			t.Errorf("addRuleCommands(%+v) (-want +got):\n%s", tt.rule, diff)
		}
	}
	if got, want := deleteRuleCommand("portbroker:53/udp"), `advfirewall firewall delete rule name="portbroker:53/udp" dir=in`; got != want {
		t.Errorf("deleteRuleCommand = %q, want %q", got, want)
	}
}

// fakeFirewallNetsh records netsh command lines and answers them.
type fakeFirewallNetsh struct {
	show  string
	fail  map[string]error // by command line prefix
	calls []string
}

func (f *fakeFirewallNetsh) run(_ context.Context, cmdline string) (string, error) {
	f.calls = append(f.calls, cmdline)
	for prefix, err := range f.fail {
		if strings.HasPrefix(cmdline, prefix) {
			return "", err
		}
	}
	if cmdline == firewallShowRules {
		return f.show, nil
	}
	return "Ok.\r\n", nil
}

func TestFirewallOpen(t *testing.T) {
	n := &fakeFirewallNetsh{fail: map[string]error{`advfirewall firewall delete`: errors.New("No rules match the specified criteria.")}}
	fw := firewall{netsh: n.run, elevated: func() bool { return true }}
	got, err := fw.open(context.Background(), FirewallRule{Port: 8000, Protocol: broker.TCPUDP, LeaseID: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	want := FirewallRule{Name: "portbroker:8000/tcp+udp:abc", Port: 8000, Protocol: broker.TCPUDP, LeaseID: "abc"}
	if got != want {
		t.Errorf("open = %+v, want %+v", got, want)
	}
	wantCalls := append([]string{deleteRuleCommand(want.Name)}, addRuleCommands(want)...)
	if diff := cmp.Diff(wantCalls, n.calls); diff != "" {
		t.Errorf("netsh calls (-want +got):\n%s", diff)
	}
}

func TestFirewallOpenUndoesHalfRule(t *testing.T) {
	n := &fakeFirewallNetsh{fail: map[string]error{`advfirewall firewall add rule name="portbroker:8000/tcp+udp" dir=in action=allow protocol=UDP`: errors.New("exit status 1")}}
	fw := firewall{netsh: n.run, elevated: func() bool { return true }}
	_, err := fw.open(context.Background(), FirewallRule{Port: 8000, Protocol: broker.TCPUDP})
	if err == nil || !strings.Contains(err.Error(), "portbroker:8000/tcp+udp") {
		t.Fatalf("open = %v, want an error naming the rule", err)
	}
	if last := n.calls[len(n.calls)-1]; last != deleteRuleCommand("portbroker:8000/tcp+udp") {
		t.Errorf("last netsh call %q, want the rule deleted again", last)
	}
}

func TestFirewallNeedsElevation(t *testing.T) {
	n := &fakeFirewallNetsh{show: fixture(t, "firewall-en.txt")}
	fw := firewall{netsh: n.run, elevated: func() bool { return false }}
	ctx := context.Background()
	_, openErr := fw.open(ctx, FirewallRule{Port: 8000, Protocol: broker.TCP})
	_, closeErr := fw.close(ctx, 8000, broker.TCP)
	for op, err := range map[string]error{"open": openErr, "close": closeErr} {
		if !errors.Is(err, broker.ErrPermission) || !strings.Contains(err.Error(), "run as administrator") {
			t.Errorf("%s without elevation = %v, want ErrPermission saying run as administrator", op, err)
		}
	}
	if len(n.calls) != 0 {
		t.Errorf("netsh ran without elevation: %q", n.calls)
	}
	// Reading rules needs no elevation.
	rules, err := fw.list(ctx)
	if err != nil || len(rules) != len(fixtureRules) {
		t.Errorf("list without elevation = %d rules, %v; want %d", len(rules), err, len(fixtureRules))
	}
}

func TestFirewallClose(t *testing.T) {
	tests := []struct {
		port  uint16
		proto broker.Protocol
		want  []string // names deleted
	}{
		{8000, broker.TCP, []string{"portbroker:8000/tcp:3f2a9c01b7e4d655"}},
		{8000, broker.TCPUDP, []string{"portbroker:8000/tcp:3f2a9c01b7e4d655"}},
		{8000, broker.UDP, nil},
		{5353, broker.UDP, []string{"portbroker:5353/tcp+udp"}},
		{9000, broker.TCPUDP, []string{"portbroker:9000/udp"}},
		// The rule that only contains the prefix is not ours.
		{8080, broker.TCP, nil},
		{1, broker.TCP, nil},
	}
	for _, tt := range tests {
		n := &fakeFirewallNetsh{show: fixture(t, "firewall-de.txt")}
		fw := firewall{netsh: n.run, elevated: func() bool { return true }}
		removed, err := fw.close(context.Background(), tt.port, tt.proto)
		if err != nil {
			t.Fatal(err)
		}
		var names, deletes []string
		for _, r := range removed {
			names = append(names, r.Name)
		}
		for _, c := range n.calls {
			if strings.Contains(c, " delete ") {
				deletes = append(deletes, c)
			}
		}
		var wantDeletes []string
		for _, name := range tt.want {
			wantDeletes = append(wantDeletes, deleteRuleCommand(name))
		}
		if diff := cmp.Diff(tt.want, names); diff != "" {
			t.Errorf("close(%d, %v) removed (-want +got):\n%s", tt.port, tt.proto, diff)
		}
		if diff := cmp.Diff(wantDeletes, deletes); diff != "" {
			t.Errorf("close(%d, %v) netsh deletes (-want +got):\n%s", tt.port, tt.proto, diff)
		}
	}
}

func TestFirewallCloseErrors(t *testing.T) {
	ctx := context.Background()
	fw := firewall{netsh: (&fakeFirewallNetsh{}).run, elevated: func() bool { return true }}
	if _, err := fw.close(ctx, 0, broker.TCP); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "port") {
		t.Errorf("close(port 0) = %v, want a port field error", err)
	}
	if _, err := fw.close(ctx, 80, 0); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "protocol") {
		t.Errorf("close(protocol 0) = %v, want a protocol field error", err)
	}
	failing := firewall{netsh: (&fakeFirewallNetsh{fail: map[string]error{"advfirewall firewall show": errors.New("exit status 1")}}).run, elevated: func() bool { return true }}
	if _, err := failing.close(ctx, 80, broker.TCP); err == nil || !strings.Contains(err.Error(), "list firewall rules") {
		t.Errorf("close with a failing netsh = %v, want the listing error", err)
	}
}

func TestFirewallCloseRule(t *testing.T) {
	tests := []struct {
		name      string
		found     bool
		wantCalls []string // after the listing
	}{
		{"portbroker:8000/tcp:3f2a9c01b7e4d655", true, []string{deleteRuleCommand("portbroker:8000/tcp:3f2a9c01b7e4d655")}},
		{"portbroker:5353/tcp+udp", true, []string{deleteRuleCommand("portbroker:5353/tcp+udp")}},
		// Same port and protocol as a rule of a lease, but no such rule.
		{"portbroker:8000/tcp", false, nil},
		{"portbroker:8000/tcp:another", false, nil},
	}
	for _, tt := range tests {
		n := &fakeFirewallNetsh{show: fixture(t, "firewall-en.txt")}
		fw := firewall{netsh: n.run, elevated: func() bool { return true }}
		got, found, err := fw.closeRule(context.Background(), tt.name)
		if err != nil {
			t.Fatalf("closeRule(%s): %v", tt.name, err)
		}
		if found != tt.found || found && got.Name != tt.name {
			t.Errorf("closeRule(%s) = %+v, %v; want found %v", tt.name, got, found, tt.found)
		}
		if diff := cmp.Diff(append([]string{firewallShowRules}, tt.wantCalls...), n.calls); diff != "" {
			t.Errorf("closeRule(%s) netsh calls (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestFirewallCloseRuleErrors(t *testing.T) {
	ctx := context.Background()
	n := &fakeFirewallNetsh{show: fixture(t, "firewall-en.txt")}
	fw := firewall{netsh: n.run, elevated: func() bool { return true }}
	for _, name := range []string{"", "Remote Desktop", "portbroker:0/tcp", `portbroker:80/tcp" dir=out`} {
		if _, _, err := fw.closeRule(ctx, name); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "name") {
			t.Errorf("closeRule(%q) = %v; want a name field error", name, err)
		}
	}
	unelevated := firewall{netsh: n.run, elevated: func() bool { return false }}
	if _, _, err := unelevated.closeRule(ctx, "portbroker:8000/tcp"); !errors.Is(err, broker.ErrPermission) {
		t.Errorf("closeRule without elevation = %v; want ErrPermission", err)
	}
	if len(n.calls) != 0 {
		t.Errorf("netsh ran for refused calls: %q", n.calls)
	}
	failing := firewall{netsh: (&fakeFirewallNetsh{show: fixture(t, "firewall-en.txt"), fail: map[string]error{"advfirewall firewall delete": errors.New("exit status 1")}}).run, elevated: func() bool { return true }}
	if _, found, err := failing.closeRule(ctx, "portbroker:9000/udp"); err == nil || found || !strings.Contains(err.Error(), "portbroker:9000/udp") {
		t.Errorf("closeRule with a failing delete = %v, found %v; want an error naming the rule", err, found)
	}
}
