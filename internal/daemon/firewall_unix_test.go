//go:build unix

package daemon

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/rpcserver"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// fwHost is the Unix host with a firewall in memory, to test how the
// daemon ties rules to leases without a Windows firewall. It names rules
// as Windows does (portbroker:<port>/<protocol>[:<lease>]), replaces a rule
// of the same name, and closes by name or by port as the netsh code does.
type fwHost struct {
	Host
	mu    sync.Mutex
	rules []rpcserver.FirewallRule
	// closed gets the name of each rule closed by name.
	closed chan string
	// Listing number blockAt (from 1) signals listBlocked, then waits for
	// hold to close; 0 blocks none.
	lists       int
	blockAt     int
	listBlocked chan struct{}
	hold        chan struct{}
}

func newFWHost() *fwHost {
	return &fwHost{Host: testHost(), closed: make(chan string, 16), listBlocked: make(chan struct{}), hold: make(chan struct{})}
}

func (h *fwHost) OpenFirewall(r rpcserver.FirewallRule) (rpcserver.FirewallRule, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Name = fmt.Sprintf("portbroker:%d/%s", r.Port, r.Protocol)
	if r.LeaseID != "" {
		r.Name += ":" + r.LeaseID
	}
	h.removeLocked(func(o rpcserver.FirewallRule) bool { return o.Name == r.Name })
	h.rules = append(h.rules, r)
	return r, nil
}

func (h *fwHost) removeLocked(match func(rpcserver.FirewallRule) bool) (removed []rpcserver.FirewallRule) {
	var kept []rpcserver.FirewallRule
	for _, r := range h.rules {
		if match(r) {
			removed = append(removed, r)
		} else {
			kept = append(kept, r)
		}
	}
	h.rules = kept
	return removed
}

func (h *fwHost) CloseFirewall(port uint16, proto broker.Protocol) ([]rpcserver.FirewallRule, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.removeLocked(func(r rpcserver.FirewallRule) bool {
		return r.Port == port && (r.Protocol.HasTCP() && proto.HasTCP() || r.Protocol.HasUDP() && proto.HasUDP())
	}), nil
}

func (h *fwHost) CloseFirewallRule(name string) (rpcserver.FirewallRule, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	removed := h.removeLocked(func(r rpcserver.FirewallRule) bool { return r.Name == name })
	if len(removed) == 0 {
		return rpcserver.FirewallRule{}, false, nil
	}
	h.closed <- name
	return removed[0], true, nil
}

func (h *fwHost) ListFirewallRules() ([]rpcserver.FirewallRule, error) {
	h.mu.Lock()
	h.lists++
	block := h.lists == h.blockAt
	h.mu.Unlock()
	if block {
		close(h.listBlocked)
		<-h.hold
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rpcserver.FirewallRule(nil), h.rules...), nil
}

func (h *fwHost) ruleNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var names []string
	for _, r := range h.rules {
		names = append(names, r.Name)
	}
	return names
}

// serveFW serves a daemon with host until the test ends and returns a
// client to it.
func serveFW(t *testing.T, host *fwHost) brokerpb.BrokerServiceClient {
	t.Helper()
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
	return brokerpb.NewBrokerServiceClient(dial(t, d.Addr()))
}

// waitClosed waits for the rule called name to be closed by name.
func waitClosed(t *testing.T, host *fwHost, name string) {
	t.Helper()
	for {
		select {
		case got := <-host.closed:
			if got == name {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("rule %s was not closed when its lease ended; rules: %v", name, host.ruleNames())
		}
	}
}

// A lease's rule closes with the lease, and a rule opened for the same
// port without a lease stays.
func TestFirewallRuleEndsWithItsLease(t *testing.T) {
	host := newFWHost()
	rpc := serveFW(t, host)
	ctx := ctxT(t)
	owner := startChild(t)
	l, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "web", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.GetLease().GetPort()
	leased, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: port, LeaseId: l.GetLease().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	unleased, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: l.GetLease().GetId()}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, host, leased.GetRule().GetName())
	if got := host.ruleNames(); len(got) != 1 || got[0] != unleased.GetRule().GetName() {
		t.Errorf("rules left = %v, want only %s, opened without a lease", got, unleased.GetRule().GetName())
	}
}

// A rule cannot be tied to a lease that does not live.
func TestFirewallRuleNeedsLiveLease(t *testing.T) {
	host := newFWHost()
	rpc := serveFW(t, host)
	_, err := rpc.OpenFirewall(ctxT(t), &brokerpb.OpenFirewallRequest{Port: 8000, LeaseId: "0123456789abcdef"})
	if err == nil {
		t.Fatal("OpenFirewall for a lease that does not exist succeeded")
	}
	if got := host.ruleNames(); len(got) != 0 {
		t.Errorf("rules = %v after a refused open; want none", got)
	}
}

// When the cleanup falls so far behind that its subscription overflows, a
// lease that ends after the overflow still gets its rule closed: the
// cleanup watches again and checks every rule against the live leases.
func TestFirewallCleanupSurvivesOverflow(t *testing.T) {
	host := newFWHost()
	// Listing 1 is the cleanup's start; listing 2 is its first lease end.
	host.blockAt = 2
	rpc := serveFW(t, host)
	ctx := ctxT(t)
	owner := int32(startChild(t).Process.Pid)
	acquire := func(name string) *brokerpb.Lease {
		t.Helper()
		l, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: name, OwnerPid: owner})
		if err != nil {
			t.Fatal(err)
		}
		return l.GetLease()
	}
	release := func(l *brokerpb.Lease) {
		t.Helper()
		if _, err := rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: l.GetId()}); err != nil {
			t.Fatal(err)
		}
	}
	web := acquire("web")
	rule, err := rpc.OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: web.GetPort(), LeaseId: web.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	release(acquire("first"))
	select {
	case <-host.listBlocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the cleanup did not act on the first lease end")
	}
	// More events than a subscription buffers, while the cleanup is stuck.
	for i := range 600 {
		release(acquire(fmt.Sprintf("churn%d", i)))
	}
	// Ended after the overflow: no event of it reaches the old subscription.
	release(web)
	close(host.hold)
	waitClosed(t, host, rule.GetRule().GetName())
}
