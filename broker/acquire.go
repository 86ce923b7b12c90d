package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxProbes bounds the candidates one request tries, so a host where most
// of the pool fails to bind answers quickly instead of probing every port.
const maxProbes = 64

// AcquireRequest asks for a lease.
type AcquireRequest struct {
	Caller    Caller
	Name      string
	Namespace string
	// Port is the preferred port; 0 means any.
	Port     int
	Protocol Protocol
	OwnerPID int
	// OwnerCallerParent makes the caller's parent the owner, as the
	// transport names the caller: a client need not send a PID it cannot
	// vouch for (brokerctl's default owner, your shell). OwnerPID must be 0.
	OwnerCallerParent bool
	LauncherPID       int
	TTL               time.Duration
	Strict            bool
	Reclaim           bool
}

// AcquireResult is a granted lease.
type AcquireResult struct {
	Lease Lease
	// Existing is true when the same owner already held this name.
	Existing bool
	// FallbackReason says why the preferred port was not granted.
	FallbackReason string
}

type acquireArgs struct {
	key      NameKey
	proto    Protocol
	owner    Process
	launcher Process
}

// Acquire leases a port. See AcquireLease in the API for the rules.
func (b *Broker) Acquire(ctx context.Context, req AcquireRequest) (AcquireResult, error) {
	a, err := b.checkAcquire(req)
	if err != nil {
		return AcquireResult{}, err
	}
	if req.Reclaim {
		if err := b.reclaimForAcquire(ctx, req.Caller, a, req.Port); err != nil {
			return AcquireResult{}, err
		}
	}
	for {
		res, wait, stale, err := b.acquireLocked(req, a)
		switch {
		case wait != nil:
			// Another change on this name is under way: wait for it, then
			// look again.
			select {
			case <-wait:
			case <-ctx.Done():
				return AcquireResult{}, fmt.Errorf("name %s: waiting for a change under way: %w", a.key, ctx.Err())
			case <-b.done:
				return AcquireResult{}, ErrClosed
			}
		case stale != nil:
			if _, err := b.end(ctx, stale.ID, EventReclaimed, ReasonOwnerExited, nil); err != nil && !errors.Is(err, ErrNotFound) {
				return AcquireResult{}, err
			}
		case err != nil || res.Existing:
			return res, err
		default:
			return b.commitAcquire(ctx, res)
		}
	}
}

func (b *Broker) checkAcquire(req AcquireRequest) (acquireArgs, error) {
	var a acquireArgs
	if err := checkName("name", req.Name); err != nil {
		return a, err
	}
	ns := req.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if err := checkName("namespace", ns); err != nil {
		return a, err
	}
	a.key = NameKey{Namespace: ns, Name: req.Name}
	if err := checkPort("port", req.Port, true); err != nil {
		return a, err
	}
	proto, err := checkProtocol(req.Protocol)
	if err != nil {
		return a, err
	}
	a.proto = proto
	if s, ok := b.cfg.Services[a.key.Name]; ok && req.Protocol == 0 && s.Protocol != 0 && ns == DefaultNamespace {
		a.proto = s.Protocol
	}
	if err := checkTTL("ttl", req.TTL); err != nil {
		return a, err
	}
	if err := checkPID("owner_pid", req.OwnerPID); err != nil {
		return a, err
	}
	if err := checkPID("launcher_pid", req.LauncherPID); err != nil {
		return a, err
	}
	ownerPID := req.OwnerPID
	if req.OwnerCallerParent {
		if ownerPID, err = b.callerParent(req); err != nil {
			return a, err
		}
	}
	if ownerPID == 0 {
		if req.Caller.PID == 0 {
			return a, fieldErr("owner_pid", "required when the caller's PID is unknown (TCP transport)")
		}
		ownerPID = req.Caller.PID
	}
	if a.owner, err = b.lookup("owner_pid", ownerPID); err != nil {
		return a, err
	}
	if c := req.Caller; c.User != "" && !c.Admin && a.owner.User != c.User {
		b.log.Warn("acquire refused: owner belongs to another user", "owner_pid", ownerPID, "owner_user", a.owner.User, "caller_pid", c.PID, "caller_user", c.User)
		return a, fmt.Errorf("owner_pid: pid %d belongs to user %s, not %s: %w", ownerPID, a.owner.User, c.User, ErrPermission)
	}
	if req.LauncherPID != 0 {
		if req.LauncherPID == ownerPID {
			return a, fieldErr("launcher_pid", "must differ from the owner's PID %d", ownerPID)
		}
		if a.launcher, err = b.lookup("launcher_pid", req.LauncherPID); err != nil {
			return a, err
		}
		if err := sameUserAsCaller("launcher_pid", req.Caller, a.launcher); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (b *Broker) lookup(field string, pid int) (Process, error) {
	p, err := b.procs.Lookup(pid)
	if errors.Is(err, ErrNoProcess) {
		return Process{}, fieldErr(field, "no process with PID %d", pid)
	}
	if err != nil {
		return Process{}, fmt.Errorf("%s: look up PID %d: %w", field, pid, err)
	}
	return p, nil
}

// acquireLocked picks a port and records a pending lease. Instead it
// returns a channel to wait on when the name's lease is busy, or a stale
// lease when the name is held by an owner that has died, for the caller to
// reclaim before trying again.
func (b *Broker) acquireLocked(req AcquireRequest, a acquireArgs) (AcquireResult, <-chan struct{}, *entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return AcquireResult{}, nil, nil, ErrClosed
	}
	if e := b.byName[a.key]; e != nil {
		if e.busy() {
			return AcquireResult{}, e.idle, nil, nil
		}
		if e.Owner.Same(a.owner) {
			if err := sameOptions(e.Lease, req, a); err != nil {
				return AcquireResult{}, nil, nil, err
			}
			return AcquireResult{Lease: e.Lease, Existing: true}, nil, nil, nil
		}
		if e.ownerGone || !b.alive(e.Owner) {
			return AcquireResult{}, nil, e, nil
		}
		return AcquireResult{}, nil, nil, b.nameTaken(a.key, e.Lease, a.owner)
	}

	if len(b.byID) >= b.cfg.Limits.Leases {
		return AcquireResult{}, nil, nil, fmt.Errorf("the daemon holds %d leases, its limit (limits.leases): %w", len(b.byID), ErrLeaseLimit)
	}
	if limit, rule := b.userLimit(); b.perUser[a.owner.User] >= limit {
		return AcquireResult{}, nil, nil, fmt.Errorf("user %s holds %d leases, %s: %w", a.owner.User, b.perUser[a.owner.User], rule, ErrUserLimit)
	}
	now := time.Now()
	var res AcquireResult
	port, explicit := b.preferredPort(a.key, req.Port)
	if port != 0 {
		if err := b.usable(port, a.proto); err != nil {
			var held *PortHeldError
			if req.Strict && explicit {
				return AcquireResult{}, nil, nil, err
			}
			if errors.As(err, &held) {
				res.FallbackReason = held.Error()
			} else {
				res.FallbackReason = err.Error()
			}
			if b.pool.inPool(port) {
				b.pool.rest(port, now)
			}
			port = 0
			// Sticky fallback: the name's last port, if it binds, before a
			// fresh pool port, so a busy preferred port does not move the
			// service to a new port on every run.
			if last := b.lastPorts[a.key]; last != 0 && explicit && b.usable(last, a.proto) == nil {
				port = last
			}
		}
	}
	if port == 0 {
		var err error
		if port, err = b.pick(a.proto, now); err != nil {
			return AcquireResult{}, nil, nil, err
		}
	}

	l := Lease{
		ID:        newID(),
		Name:      a.key.Name,
		Namespace: a.key.Namespace,
		Port:      port,
		Protocol:  a.proto,
		Owner:     a.owner,
		Launcher:  a.launcher,
		CreatedAt: now,
		TTL:       req.TTL,
	}
	if l.TTL > 0 {
		l.ExpiresAt = now.Add(l.TTL)
	}
	e := newEntry(l, statePending)
	b.insert(e)
	if err := b.watchProcsLocked(e); err != nil {
		b.removeLocked(e)
		return AcquireResult{}, nil, nil, err
	}
	res.Lease = l
	return res, nil, nil, nil
}

// sameOptions checks that a re-acquire by a name's owner asks for what its
// lease has, so that a caller never silently gets a lease other than the
// one it asked for.
func sameOptions(l Lease, req AcquireRequest, a acquireArgs) error {
	var diffs []string
	if a.proto != l.Protocol {
		diffs = append(diffs, fmt.Sprintf("protocol %s, asked %s", l.Protocol, a.proto))
	}
	if req.Strict && req.Port != 0 && uint16(req.Port) != l.Port {
		diffs = append(diffs, fmt.Sprintf("port %d, asked strictly for %d", l.Port, req.Port))
	}
	if req.TTL != l.TTL {
		diffs = append(diffs, fmt.Sprintf("ttl %s, asked %s", l.TTL, req.TTL))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("name %s is already leased to this owner (lease %s) with %s: %w",
		l.Key(), l.ID, strings.Join(diffs, "; "), ErrMismatch)
}

// preferredPort is the port a name should get: the one asked for, else its
// configured service port, else its last port. explicit is true for the
// first two, which strict holds to.
func (b *Broker) preferredPort(key NameKey, asked int) (port uint16, explicit bool) {
	if asked != 0 {
		return uint16(asked), true
	}
	if key.Namespace == DefaultNamespace {
		if s, ok := b.cfg.Services[key.Name]; ok && s.Port != 0 {
			return s.Port, true
		}
	}
	return b.lastPorts[key], false
}

// usable checks a preferred port: not leased, and it binds now.
func (b *Broker) usable(port uint16, proto Protocol) error {
	if e := b.byPort[port]; e != nil {
		l := e.Lease
		return &PortHeldError{Port: port, Holder: l.Owner, Lease: &l}
	}
	if err := b.prober.Probe(port, proto); err != nil {
		held := &PortHeldError{Port: port, Detail: err.Error()}
		var be *BindError
		if errors.As(err, &be) && be.Detail != "" {
			held.Detail = be.Detail
		}
		return held
	}
	return nil
}

// pick takes the next pool port that binds now.
func (b *Broker) pick(proto Protocol, now time.Time) (uint16, error) {
	b.pool.sweep(now)
	for range maxProbes {
		port, ok := b.pool.candidate()
		if !ok {
			break
		}
		if err := b.prober.Probe(port, proto); err != nil {
			b.pool.rest(port, now)
			continue
		}
		return port, nil
	}
	if b.pool.free == 0 {
		return 0, fmt.Errorf("all %d ports of pool %s are leased or failed to bind: %w", b.pool.size, b.pool.rng, ErrPoolExhausted)
	}
	return 0, fmt.Errorf("%d ports of pool %s in a row failed to bind: %w", maxProbes, b.pool.rng, ErrPoolExhausted)
}

// commitAcquire makes a pending lease durable, then live.
func (b *Broker) commitAcquire(ctx context.Context, res AcquireResult) (AcquireResult, error) {
	l := res.Lease
	err := b.store.Put(ctx, l)
	b.mu.Lock()
	e := b.byID[l.ID]
	if err != nil {
		b.removeLocked(e)
		b.mu.Unlock()
		return AcquireResult{}, fmt.Errorf("store lease %s: %w", l.ID, err)
	}
	b.rememberLocked(l.Key(), l.Port, Process{})
	b.publish(Event{Type: EventAcquired, Lease: l, Time: time.Now()})
	// Settling acts on exits of the owner or launcher seen while pending.
	b.settleLocked(e, false)
	b.mu.Unlock()
	b.log.Info("lease acquired", leaseAttrs(l, "fallback", res.FallbackReason)...)
	return res, nil
}

func newID() string {
	var buf [8]byte
	_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails.
	return hex.EncodeToString(buf[:])
}

// callerParent is the PID of the caller's parent, read from the host by
// the PID the transport gave for the caller.
func (b *Broker) callerParent(req AcquireRequest) (int, error) {
	const field = "owner_caller_parent"
	switch {
	case req.OwnerPID != 0:
		return 0, fieldErr(field, "cannot be combined with owner_pid %d", req.OwnerPID)
	case req.Caller.PID == 0:
		return 0, fieldErr(field, "the transport could not name the caller, so neither can its parent; pass owner_pid")
	case b.inspect == nil:
		return 0, fmt.Errorf("%s: %w", field, ErrUnsupported)
	}
	info, err := b.inspect.Inspect(req.Caller.PID)
	if err != nil {
		return 0, fieldErr(field, "the caller, pid %d, could not be looked up: %v", req.Caller.PID, err)
	}
	if info.PPID <= 1 {
		return 0, fieldErr(field, "the caller, pid %d, has no parent but init; pass owner_pid", req.Caller.PID)
	}
	return info.PPID, nil
}
