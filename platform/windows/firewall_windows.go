package windows

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

// systemFirewall manages rules with the system's netsh, as this process.
var systemFirewall = firewall{
	netsh:    runNetshLine,
	elevated: func() bool { return xwin.GetCurrentProcessToken().IsElevated() },
}

// OpenFirewall creates an inbound allow rule for rule's port and protocol,
// scoped to rule.Program when set, with `netsh advfirewall firewall add
// rule`, and returns it with the name the broker gave it (see FirewallRule).
// An existing rule of that name is replaced. It returns an error matching
// broker.ErrPermission, saying to run as administrator, when this process is
// not elevated, and one matching broker.ErrInvalid for a bad field.
func (h *Host) OpenFirewall(rule FirewallRule) (FirewallRule, error) {
	return systemFirewall.open(context.Background(), rule)
}

// CloseFirewall deletes the broker's inbound rules for port that cover any
// protocol proto covers, and returns what it deleted (after an error, what
// it deleted before). Rules not named by the broker are never touched. It
// needs elevation, as OpenFirewall does.
func (h *Host) CloseFirewall(port uint16, proto broker.Protocol) ([]FirewallRule, error) {
	return systemFirewall.close(context.Background(), port, proto)
}

// CloseFirewallRule deletes the broker's rule called name, and no other,
// and returns it; found is false when there is none. It needs elevation.
func (h *Host) CloseFirewallRule(name string) (rule FirewallRule, found bool, err error) {
	return systemFirewall.closeRule(context.Background(), name)
}

// ListFirewallRules returns the broker's inbound rules, read from `netsh
// advfirewall firewall show rule name=all dir=in verbose`. It needs no
// elevation. Under Wine, whose netsh prints nothing, it returns none.
func (h *Host) ListFirewallRules() ([]FirewallRule, error) {
	return systemFirewall.list(context.Background())
}

// runNetshLine runs the system's netsh with cmdline as its arguments,
// passed verbatim: netsh takes name="..." with the quotes inside the
// argument, which Go's own quoting of arguments would not produce.
func runNetshLine(ctx context.Context, cmdline string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, netshTimeout)
	defer cancel()
	path := netshPath()
	cmd := exec.CommandContext(ctx, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CmdLine:       `"` + path + `" ` + cmdline,
		CreationFlags: xwin.CREATE_NO_WINDOW,
	}
	out, err := cmd.Output()
	if err != nil {
		// netsh explains its failures on stdout.
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return "", fmt.Errorf("netsh %s: %w: %.300s", cmdline, err, msg)
		}
		return "", fmt.Errorf("netsh %s: %w", cmdline, err)
	}
	return string(out), nil
}
