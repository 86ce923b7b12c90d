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
	CloseFirewall(port uint16, proto broker.Protocol) ([]FirewallRule, error)
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
	rule, err := s.firewall.OpenFirewall(FirewallRule{Port: port, Protocol: proto, Program: req.GetProgram(), LeaseID: req.GetLeaseId()})
	if err != nil {
		return nil, toStatus(err)
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
