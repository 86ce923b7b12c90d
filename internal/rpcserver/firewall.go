package rpcserver

import (
	"context"
	"fmt"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
)

// FirewallRule is an inbound allow rule the broker manages.
type FirewallRule struct {
	Name     string
	Port     uint16
	Protocol broker.Protocol
	Program  string
	LeaseID  string
}

// Firewall manages the broker's own firewall rules. Only Windows has one;
// elsewhere the server answers Unimplemented.
type Firewall interface {
	OpenFirewall(rule FirewallRule) (FirewallRule, error)
	// CloseFirewall deletes every broker rule for port that covers a
	// protocol proto covers.
	CloseFirewall(port uint16, proto broker.Protocol) ([]FirewallRule, error)
	// CloseFirewallRule deletes the broker rule called name, and no other;
	// found is false when there is none.
	CloseFirewallRule(name string) (rule FirewallRule, found bool, err error)
	ListFirewallRules() ([]FirewallRule, error)
}

// SetFirewall gives the server the platform's firewall.
func (s *Server) SetFirewall(fw Firewall) { s.firewall = fw }

var errNoFirewall = statusError(codes.Unimplemented, ReasonUnsupported,
	"firewall rules are managed by portbrokerd on Windows only; on this OS open the port with your firewall tool (ufw, firewalld, nftables or pf)")

func (s *Server) OpenFirewall(_ context.Context, req *brokerpb.OpenFirewallRequest) (*brokerpb.OpenFirewallResponse, error) {
	port, proto, err := s.firewallTarget(req.GetPort(), req.GetProtocol())
	if err != nil {
		return nil, err
	}
	leaseID := req.GetLeaseId()
	if leaseID != "" {
		if _, err := s.b.Get(leaseID); err != nil {
			return nil, statusError(codes.NotFound, ReasonNotFound, fmt.Sprintf("lease_id: no live lease %s to tie the rule to", leaseID))
		}
	}
	rule, err := s.firewall.OpenFirewall(FirewallRule{Port: port, Protocol: proto, Program: req.GetProgram(), LeaseID: leaseID})
	if err != nil {
		return nil, toStatus(err)
	}
	// The daemon closes a lease's rules when the lease ends; a lease that
	// ended while netsh ran is gone before its rule existed.
	if leaseID != "" {
		if _, err := s.b.Get(leaseID); err != nil {
			if _, _, cerr := s.firewall.CloseFirewallRule(rule.Name); cerr != nil {
				return nil, statusError(codes.Internal, ReasonInternal, fmt.Sprintf("lease %s ended while its rule %s was opened, and closing the rule failed: %v", leaseID, rule.Name, cerr))
			}
			return nil, statusError(codes.NotFound, ReasonNotFound, fmt.Sprintf("lease_id: lease %s ended while its rule was opened; the rule is closed again", leaseID))
		}
	}
	return &brokerpb.OpenFirewallResponse{Rule: ruleToPB(rule)}, nil
}

func (s *Server) CloseFirewall(_ context.Context, req *brokerpb.CloseFirewallRequest) (*brokerpb.CloseFirewallResponse, error) {
	port, proto, err := s.firewallTarget(req.GetPort(), req.GetProtocol())
	if err != nil {
		return nil, err
	}
	removed, err := s.firewall.CloseFirewall(port, proto)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &brokerpb.CloseFirewallResponse{}
	for _, r := range removed {
		out.Removed = append(out.Removed, ruleToPB(r))
	}
	return out, nil
}

func (s *Server) ListFirewallRules(context.Context, *brokerpb.ListFirewallRulesRequest) (*brokerpb.ListFirewallRulesResponse, error) {
	if s.firewall == nil {
		return nil, errNoFirewall
	}
	rules, err := s.firewall.ListFirewallRules()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &brokerpb.ListFirewallRulesResponse{}
	for _, r := range rules {
		out.Rules = append(out.Rules, ruleToPB(r))
	}
	return out, nil
}

// firewallTarget checks that there is a firewall and that the port and
// protocol of a rule request are valid.
func (s *Server) firewallTarget(port uint32, p brokerpb.Protocol) (uint16, broker.Protocol, error) {
	if s.firewall == nil {
		return 0, 0, errNoFirewall
	}
	if port < 1 || port > 65535 {
		return 0, 0, invalidArgument("port", fmt.Sprintf("must be from 1 to 65535, got %d", port), fmt.Sprintf("port: must be from 1 to 65535, got %d", port))
	}
	proto := protocolFromPB(p)
	if proto == 0 {
		proto = broker.TCP
	}
	if !proto.Valid() {
		rule := fmt.Sprintf("unknown value %d: want PROTOCOL_TCP, PROTOCOL_UDP or PROTOCOL_TCP_UDP", p)
		return 0, 0, invalidArgument("protocol", rule, "protocol: "+rule)
	}
	return uint16(port), proto, nil
}

func ruleToPB(r FirewallRule) *brokerpb.FirewallRule {
	return &brokerpb.FirewallRule{Name: r.Name, Port: uint32(r.Port), Protocol: protocolToPB(r.Protocol), Program: r.Program, LeaseId: r.LeaseID}
}
