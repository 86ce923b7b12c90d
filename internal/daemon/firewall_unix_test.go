//go:build unix

package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/rpcserver"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// fwHost is the Unix host with a firewall in memory, to test how the
// daemon ties rules to leases without a Windows firewall.
type fwHost struct {
	Host
	mu     sync.Mutex
	rules  []rpcserver.FirewallRule
	closed chan uint16
}

func (h *fwHost) OpenFirewall(r rpcserver.FirewallRule) (rpcserver.FirewallRule, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Name = "portbroker:test"
	h.rules = append(h.rules, r)
	return r, nil
}

func (h *fwHost) CloseFirewall(port uint16, proto broker.Protocol) ([]rpcserver.FirewallRule, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kept, removed []rpcserver.FirewallRule
	for _, r := range h.rules {
		if r.Port == port && r.Protocol == proto {
			removed = append(removed, r)
		} else {
			kept = append(kept, r)
		}
	}
	h.rules = kept
	h.closed <- port
	return removed, nil
}

func (h *fwHost) ListFirewallRules() ([]rpcserver.FirewallRule, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rpcserver.FirewallRule(nil), h.rules...), nil
}

func TestFirewallRuleEndsWithItsLease(t *testing.T) {
	host := &fwHost{Host: testHost(), closed: make(chan uint16, 4)}
	d, err := New(ctxT(t), testConfig(t), host, nil)
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(serveCtx, nil) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.Addr()))

	owner := startChild(t)
	l, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.GetLease().GetPort()
	if _, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: port, LeaseId: l.GetLease().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: 9999}); err != nil {
		t.Fatal(err)
	}
	list, err := rpc.ListFirewallRules(ctx, &brokerpb.ListFirewallRulesRequest{})
	if err != nil || len(list.GetRules()) != 2 {
		t.Fatalf("rules = %v, %v; want two", list, err)
	}
	if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: l.GetLease().GetId()}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-host.closed:
		if got != uint16(port) {
			t.Errorf("closed the rule for port %d, want %d", got, port)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lease's rule was not closed when the lease ended")
	}
	rules, _ := host.ListFirewallRules()
	if len(rules) != 1 || rules[0].Port != 9999 {
		t.Errorf("rules left = %v, want only the one without a lease", rules)
	}
}
