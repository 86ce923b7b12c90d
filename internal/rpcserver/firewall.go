package rpcserver

import (
	"context"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

var errNoFirewall = status.Error(codes.Unimplemented,
	"firewall rules are managed by portbrokerd on Windows only; on this OS open the port with your firewall tool (ufw, firewalld, nftables or pf)")

func (s *Server) OpenFirewall(_ context.Context, req *brokerpb.OpenFirewallRequest) (*brokerpb.OpenFirewallResponse, error) {
	if s.firewall == nil {
		return nil, errNoFirewall
	}
	if req.GetPort() < 1 || req.GetPort() > 65535 {
		return nil, status.Errorf(codes.InvalidArgument, "port: must be from 1 to 65535, got %d", req.GetPort())
	}
	proto := protocolFromPB(req.GetProtocol())
	if proto == 0 {
		proto = broker.TCP
	}
	if !proto.Valid() {
		return nil, status.Errorf(codes.InvalidArgument, "protocol: unknown value %d", req.GetProtocol())
	}
	rule, err := s.firewall.OpenFirewall(FirewallRule{Port: uint16(req.GetPort()), Protocol: proto, Program: req.GetProgram(), LeaseID: req.GetLeaseId()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &brokerpb.OpenFirewallResponse{Rule: ruleToPB(rule)}, nil
}

func (s *Server) CloseFirewall(_ context.Context, req *brokerpb.CloseFirewallRequest) (*brokerpb.CloseFirewallResponse, error) {
	if s.firewall == nil {
		return nil, errNoFirewall
	}
	if req.GetPort() < 1 || req.GetPort() > 65535 {
		return nil, status.Errorf(codes.InvalidArgument, "port: must be from 1 to 65535, got %d", req.GetPort())
	}
	proto := protocolFromPB(req.GetProtocol())
	if proto == 0 {
		proto = broker.TCP
	}
	removed, err := s.firewall.CloseFirewall(uint16(req.GetPort()), proto)
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

func ruleToPB(r FirewallRule) *brokerpb.FirewallRule {
	return &brokerpb.FirewallRule{Name: r.Name, Port: uint32(r.Port), Protocol: protocolToPB(r.Protocol), Program: r.Program, LeaseId: r.LeaseID}
}
