package main

import (
	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/internal/rpcserver"
	"github.com/portbroker/portbroker/platform/windows"
)

func newHost() daemon.Host { return windowsHost{windows.New()} }

// protectedNames are never stopped, whoever asks.
var protectedNames = windows.ProtectedNames

// windowsHost adapts the Windows firewall to the server's rule type.
type windowsHost struct{ *windows.Host }

func (h windowsHost) OpenFirewall(r rpcserver.FirewallRule) (rpcserver.FirewallRule, error) {
	got, err := h.Host.OpenFirewall(windows.FirewallRule(r))
	return rpcserver.FirewallRule(got), err
}

func (h windowsHost) CloseFirewall(port uint16, proto broker.Protocol) ([]rpcserver.FirewallRule, error) {
	removed, err := h.Host.CloseFirewall(port, proto)
	return rules(removed), err
}

func (h windowsHost) CloseFirewallRule(name string) (rpcserver.FirewallRule, bool, error) {
	r, found, err := h.Host.CloseFirewallRule(name)
	return rpcserver.FirewallRule(r), found, err
}

func (h windowsHost) ListFirewallRules() ([]rpcserver.FirewallRule, error) {
	all, err := h.Host.ListFirewallRules()
	return rules(all), err
}

func rules(in []windows.FirewallRule) []rpcserver.FirewallRule {
	out := make([]rpcserver.FirewallRule, len(in))
	for i, r := range in {
		out[i] = rpcserver.FirewallRule(r)
	}
	return out
}
