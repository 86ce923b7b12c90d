package windows

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"testing"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

func TestFirewallUnderWine(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") == "" {
		t.Skip("Wine only; TestFirewallLive covers Windows")
	}
	h := New()
	// Wine's netsh prints nothing, so there are no rules, and the command
	// line runs.
	rules, err := h.ListFirewallRules()
	if err != nil || len(rules) != 0 {
		t.Errorf("ListFirewallRules under Wine = %+v, %v; want none", rules, err)
	}
	if _, err := h.OpenFirewall(FirewallRule{Port: 8000, Protocol: broker.TCP, Program: "relative.exe"}); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("OpenFirewall with a relative program = %v, want ErrInvalid", err)
	}
}

// TestFirewallLive changes the real firewall, so it runs only where asked
// (PORTBROKER_TEST_FIREWALL=1, on a throwaway machine such as a CI runner)
// and elevated. It removes the rule it adds.
func TestFirewallLive(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine's netsh is a stub")
	}
	h := New()
	if _, err := h.ListFirewallRules(); err != nil {
		t.Fatalf("ListFirewallRules: %v", err)
	}
	if os.Getenv("PORTBROKER_TEST_FIREWALL") != "1" {
		t.Skip("set PORTBROKER_TEST_FIREWALL=1 to let this test add and remove a firewall rule")
	}
	if !xwin.GetCurrentProcessToken().IsElevated() {
		t.Skip("needs an elevated process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := FirewallRule{Port: 47913, Protocol: broker.TCPUDP, Program: exe, LeaseID: "test-" + strconv.Itoa(os.Getpid())}
	got, err := h.OpenFirewall(want)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.CloseFirewall(want.Port, want.Protocol) })
	want.Name = firewallRuleName(want.Port, want.Protocol, want.LeaseID)
	if got != want {
		t.Errorf("OpenFirewall = %+v, want %+v", got, want)
	}
	rules, err := h.ListFirewallRules()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rules, want) {
		t.Fatalf("ListFirewallRules = %+v, want it to hold %+v", rules, want)
	}
	removed, err := h.CloseFirewall(want.Port, broker.UDP)
	if err != nil || len(removed) != 1 || removed[0] != want {
		t.Errorf("CloseFirewall = %+v, %v; want %+v", removed, err, want)
	}
	rules, err = h.ListFirewallRules()
	if err != nil || slices.Contains(rules, want) {
		t.Errorf("ListFirewallRules after Close = %+v, %v; want the rule gone", rules, err)
	}
}
