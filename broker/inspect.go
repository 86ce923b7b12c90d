package broker

import (
	"context"
	"errors"
	"fmt"
)

// EphemeralPosition places a port against the OS ephemeral range.
type EphemeralPosition uint8

const (
	EphemeralBelow EphemeralPosition = iota + 1
	EphemeralInside
	EphemeralAbove
)

// PortReport is what InspectPort finds.
type PortReport struct {
	Port     uint16
	Protocol Protocol
	// Lease is set when the port is leased.
	Lease   *Lease
	Holders []ProcessInfo
	// Bind is nil when the port binds now.
	Bind *BindError
	// Fix is one sentence on what to do when the port is not usable.
	Fix        string
	Ephemeral  PortRange
	Position   EphemeralPosition
	ExcludedBy []PortRange
	InPool     bool
}

// InspectPort tells who holds a port, leased or not, and whether it binds.
func (b *Broker) InspectPort(ctx context.Context, port int, proto Protocol) (PortReport, error) {
	if err := checkPort("port", port, false); err != nil {
		return PortReport{}, err
	}
	proto, err := checkProtocol(proto)
	if err != nil {
		return PortReport{}, err
	}
	r := PortReport{Port: uint16(port), Protocol: proto}
	b.mu.Lock()
	if e := b.byPort[r.Port]; e != nil && e.state != statePending {
		l := e.Lease
		r.Lease = &l
	}
	r.Ephemeral = b.pool.cfg.Ephemeral
	r.InPool = b.pool.inPool(r.Port)
	r.ExcludedBy = append(rangesContaining(b.pool.cfg.Reserved, r.Port), rangesContaining(b.pool.cfg.Exclude, r.Port)...)
	b.mu.Unlock()

	switch {
	case r.Ephemeral.Len() == 0:
	case r.Port < r.Ephemeral.First:
		r.Position = EphemeralBelow
	case r.Port > r.Ephemeral.Last:
		r.Position = EphemeralAbove
	default:
		r.Position = EphemeralInside
	}
	if r.Holders, err = b.portHolders(r.Port, proto); err != nil {
		return PortReport{}, err
	}
	if err := b.prober.Probe(r.Port, proto); err != nil {
		var be *BindError
		if !errors.As(err, &be) {
			be = &BindError{Port: r.Port, Class: BindOther, Detail: err.Error(), Err: err}
		}
		r.Bind = be
		r.Fix = be.Fix
		if be.Class == BindInUse && len(r.Holders) > 0 {
			r.Fix = b.cfg.Kill.stopFix(r.Holders[0], r.Port)
		}
	}
	if r.Lease != nil && r.Bind != nil {
		r.Fix = fmt.Sprintf("the port is leased to %s by %s; release it with: brokerctl release %s", r.Lease.Key(), r.Lease.Owner, r.Lease.ID)
	}
	return r, nil
}

// portHolders returns the holders with the broker's own view of which are
// system processes.
func (b *Broker) portHolders(port uint16, proto Protocol) ([]ProcessInfo, error) {
	if b.holders == nil {
		return nil, nil
	}
	hs, err := b.holders.Holders(port, proto)
	if err != nil {
		return nil, fmt.Errorf("find the processes holding port %d: %w", port, err)
	}
	for i := range hs {
		h := &hs[i]
		h.System = h.System || h.KernelThread || h.PID <= 1 || b.cfg.Kill.protected(h.Name)
	}
	return hs, nil
}
