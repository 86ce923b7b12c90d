package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// resubscribeDelay spaces attempts to watch leases again after the
// watcher limit refused one.
const resubscribeDelay = time.Second

// startRuleCleanup starts closing the firewall rules of leases that end,
// and returns the function that stops it and waits for it.
func (d *Daemon) startRuleCleanup(ctx context.Context) (stop func(), err error) {
	sub, err := d.broker.Watch("", false)
	if err != nil {
		return nil, fmt.Errorf("watch leases for firewall rules: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.closeRulesOfEndedLeases(ctx, sub)
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// closeRulesOfEndedLeases closes the rule opened for a lease when the lease
// ends, so a port nobody leases is not left open, until ctx ends or the
// broker closes. It owns sub. It first closes the rules of leases that
// ended while no daemon watched. When the subscription overflows, events
// were lost: it subscribes again and then closes every rule whose lease is
// gone, so no lease's end falls between the two.
func (d *Daemon) closeRulesOfEndedLeases(ctx context.Context, sub *broker.Subscription) {
	defer func() { sub.Close() }()
	d.closeRulesOfGoneLeases()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.Events():
			if ok {
				if ev.Type.Ended() {
					d.closeRulesOfLease(ev.Lease.ID)
				}
				continue
			}
			err := sub.Err()
			if !errors.Is(err, broker.ErrOverflow) {
				if err != nil && !errors.Is(err, broker.ErrClosed) {
					d.log.Warn("firewall cleanup stopped watching leases", "err", err)
				}
				return
			}
			d.log.Warn("firewall cleanup fell behind the lease events; watching again and checking every rule")
			if sub = d.resubscribe(ctx); sub == nil {
				return
			}
			d.closeRulesOfGoneLeases()
		}
	}
}

// resubscribe watches leases again, retrying while the watcher limit is
// reached; nil when ctx ended or the broker closed first.
func (d *Daemon) resubscribe(ctx context.Context) *broker.Subscription {
	for {
		sub, err := d.broker.Watch("", false)
		if err == nil {
			return sub
		}
		if errors.Is(err, broker.ErrClosed) {
			return nil
		}
		d.log.Warn("firewall cleanup cannot watch leases yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(resubscribeDelay):
		}
	}
}

// closeRulesOfLease closes the rules opened for lease id, and only them.
func (d *Daemon) closeRulesOfLease(id string) {
	d.closeRulesWhere(func(leaseID string) bool { return leaseID == id })
}

// closeRulesOfGoneLeases closes every rule opened for a lease that no
// longer lives.
func (d *Daemon) closeRulesOfGoneLeases() {
	d.closeRulesWhere(func(leaseID string) bool {
		_, err := d.broker.Get(leaseID)
		return errors.Is(err, broker.ErrNotFound)
	})
}

// closeRulesWhere closes, by name, each rule opened for a lease for which
// ended is true. Rules opened without a lease are never closed here.
//
// Rules live in the system's firewall, which another elevated daemon may
// share: a rule of its lease counts as gone here and is closed, which errs
// on the side of a closed port.
func (d *Daemon) closeRulesWhere(ended func(leaseID string) bool) {
	rules, err := d.fw.ListFirewallRules()
	if err != nil {
		d.log.Warn("list firewall rules", "err", err)
		return
	}
	for _, r := range rules {
		if r.LeaseID == "" || !ended(r.LeaseID) {
			continue
		}
		if _, _, err := d.fw.CloseFirewallRule(r.Name); err != nil {
			d.log.Warn("close the firewall rule of an ended lease", "rule", r.Name, "lease", r.LeaseID, "err", err)
			continue
		}
		d.log.Info("firewall rule closed with its lease", "rule", r.Name, "lease", r.LeaseID, "port", r.Port)
	}
}
