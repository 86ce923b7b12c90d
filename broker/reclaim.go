package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StopMethod says how a process was stopped.
type StopMethod uint8

const (
	StopGraceful StopMethod = iota + 1
	StopForced
	StopAlreadyExited
)

func (m StopMethod) String() string {
	switch m {
	case StopGraceful:
		return "graceful"
	case StopForced:
		return "forced"
	case StopAlreadyExited:
		return "already exited"
	}
	return "unknown"
}

// Stopped is one process a reclaim stopped.
type Stopped struct {
	Process ProcessInfo
	Method  StopMethod
}

// Orphan reports whether nobody is left to stop p: its parent is gone and
// it is not the system's own.
func (p ProcessInfo) Orphan() bool { return !p.ParentAlive && !p.System && !p.KernelThread }

// Timings of the stop and the port re-check. Variables so tests can shorten
// them; production never changes them.
var (
	// forcedWait bounds the wait for a killed process to disappear.
	forcedWait = 5 * time.Second
	// freeChecks and freeInterval bound the re-check that a port binds after
	// its holders stopped: the kernel may release it a moment later.
	freeChecks   = 10
	freeInterval = 100 * time.Millisecond
)

// stopPlan is a checked set of process trees, ready to stop.
type stopPlan struct {
	procs []ProcessInfo // roots and descendants, parents before children
	why   string
	asker Caller
}

// planStop collects the trees rooted at roots and applies the kill-safety
// rules to every process in them, so a refusal happens before anything is
// stopped.
func (b *Broker) planStop(caller Caller, roots []ProcessInfo, why string) (*stopPlan, error) {
	if b.killer == nil || b.inspect == nil {
		return nil, fmt.Errorf("stopping processes: %w", ErrUnsupported)
	}
	plan := &stopPlan{why: why, asker: caller}
	seen := map[procKey]bool{}
	add := func(p ProcessInfo) {
		if k := keyOf(p.Process); !seen[k] {
			seen[k] = true
			plan.procs = append(plan.procs, p)
		}
	}
	for _, root := range roots {
		add(root)
		desc, err := b.inspect.Descendants(root.Process)
		if err != nil && !errors.Is(err, ErrNoProcess) {
			return nil, fmt.Errorf("list the processes under pid %d: %w", root.PID, err)
		}
		for _, d := range desc {
			add(d)
		}
	}
	ancestors := b.ancestors(caller.PID)
	for _, p := range plan.procs {
		if err := b.cfg.Kill.mayKill(caller, ancestors, p); err != nil {
			b.log.Warn("kill refused", "pid", p.PID, "name", p.Name, "reason", err, "asked_by_pid", caller.PID, "asked_by_user", caller.User, "why", why)
			return nil, err
		}
	}
	return plan, nil
}

// ancestors returns the PIDs above pid, so a caller is never made to kill
// its own shell or launcher.
func (b *Broker) ancestors(pid int) map[int]bool {
	out := map[int]bool{}
	for range 64 {
		if pid <= 1 || b.inspect == nil {
			break
		}
		info, err := b.inspect.Inspect(pid)
		if err != nil {
			break
		}
		pid = info.PPID
		if pid > 1 {
			out[pid] = true
		}
	}
	return out
}

// run stops the plan's processes: a graceful request to each, a wait of up
// to grace, then a forced stop of the survivors, leaves first.
func (b *Broker) run(ctx context.Context, plan *stopPlan, grace time.Duration, force bool) []Stopped {
	out := make([]Stopped, len(plan.procs))
	for i, p := range plan.procs {
		out[i].Process = p
	}
	if !force {
		for i, p := range plan.procs {
			switch err := b.killer.Terminate(p.Process); {
			case errors.Is(err, ErrNoProcess):
				out[i].Method = StopAlreadyExited
			case err != nil:
				b.log.Info("no graceful stop; will force after the grace period", "pid", p.PID, "name", p.Name, "err", err)
			default:
				out[i].Method = StopGraceful
			}
		}
		b.waitGone(ctx, plan.procs, grace)
	}
	for i := len(plan.procs) - 1; i >= 0; i-- {
		p := plan.procs[i]
		if out[i].Method == StopAlreadyExited || !b.alive(p.Process) {
			if out[i].Method == 0 {
				out[i].Method = StopAlreadyExited
			}
			continue
		}
		switch err := b.killer.Kill(p.Process); {
		case errors.Is(err, ErrNoProcess):
			if out[i].Method == 0 {
				out[i].Method = StopAlreadyExited
			}
		case err != nil:
			b.log.Error("forced stop failed", "pid", p.PID, "name", p.Name, "err", err)
		default:
			out[i].Method = StopForced
		}
	}
	b.waitGone(ctx, plan.procs, forcedWait)
	for _, s := range out {
		b.log.Info("process stopped", "pid", s.Process.PID, "name", s.Process.Name, "method", s.Method.String(),
			"asked_by_pid", plan.asker.PID, "asked_by_user", plan.asker.User, "why", plan.why)
	}
	return out
}

// waitGone waits until every process in procs has exited, up to d.
func (b *Broker) waitGone(ctx context.Context, procs []ProcessInfo, d time.Duration) bool {
	deadline := time.Now().Add(d)
	interval := 5 * time.Millisecond
	for {
		alive := false
		for _, p := range procs {
			if b.alive(p.Process) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-b.done:
			return false
		case <-time.After(min(interval, time.Until(deadline))):
		}
		interval = min(interval*2, 100*time.Millisecond)
	}
}

// waitFree re-checks that port binds, a few times, since the kernel may
// release a socket a moment after its process died.
func (b *Broker) waitFree(ctx context.Context, port uint16, proto Protocol) (bool, string) {
	var last error
	for i := range freeChecks {
		if last = b.prober.Probe(port, proto); last == nil {
			return true, ""
		}
		if i == freeChecks-1 {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err().Error()
		case <-time.After(freeInterval):
		}
	}
	var be *BindError
	if errors.As(last, &be) && be.Detail != "" {
		return false, be.Detail
	}
	return false, last.Error()
}

// orphaned applies the orphan policy to a lease whose launcher exited
// while its owner lives on. The stop runs on its own goroutine, owned by
// the broker, so one orphan's grace period does not delay other exits.
func (b *Broker) orphaned(l Lease) {
	if b.cfg.Orphans == OrphanKeep {
		b.log.Info("launcher exited; keeping its service (reclaim.orphans: keep)", leaseAttrs(l)...)
		return
	}
	b.mu.Lock()
	if b.reaping[l.ID] {
		b.mu.Unlock()
		return
	}
	b.reaping[l.ID] = true
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.unreap(l.ID)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-b.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		b.stopOrphan(ctx, l)
	}()
}

func (b *Broker) unreap(id string) {
	b.mu.Lock()
	delete(b.reaping, id)
	b.mu.Unlock()
}

func (b *Broker) stopOrphan(ctx context.Context, l Lease) {
	why := fmt.Sprintf("orphan rule: launcher pid %d of %s exited", l.Launcher.PID, l.Key())
	owner, err := b.liveInfo(l.Owner)
	if errors.Is(err, ErrNoProcess) {
		if _, err := b.end(ctx, l.ID, EventReclaimed, ReasonOwnerExited, nil); err != nil && !errors.Is(err, ErrNotFound) {
			b.log.Error("reclaim lease of exited owner", "lease", l.ID, "err", err)
		}
		return
	}
	if err != nil {
		b.log.Error("orphaned service left running", leaseAttrs(l, "err", err.Error())...)
		return
	}
	plan, err := b.planStop(b.daemonCaller(), []ProcessInfo{owner}, why)
	if err != nil {
		b.log.Error("orphaned service left running", leaseAttrs(l, "err", err.Error())...)
		return
	}
	b.run(ctx, plan, b.cfg.Grace, false)
	if free, detail := b.waitFree(ctx, l.Port, l.Protocol); !free {
		b.log.Warn("port still does not bind after stopping the orphan", "port", l.Port, "detail", detail)
	}
	if _, err := b.end(ctx, l.ID, EventReclaimed, ReasonLauncherExited, nil); err != nil && !errors.Is(err, ErrNotFound) {
		b.log.Error("reclaim lease of orphan", "lease", l.ID, "err", err)
	}
}

// daemonCaller is the identity the broker acts under on its own behalf.
func (b *Broker) daemonCaller() Caller {
	return Caller{User: b.cfg.Kill.User, Admin: b.cfg.Kill.Admin}
}

// liveInfo returns the facts of p if it is still the same process.
func (b *Broker) liveInfo(p Process) (ProcessInfo, error) {
	if b.inspect == nil {
		return ProcessInfo{}, fmt.Errorf("inspect pid %d: %w", p.PID, ErrUnsupported)
	}
	info, err := b.inspect.Inspect(p.PID)
	if err != nil {
		return ProcessInfo{}, err
	}
	if !info.Process.Same(p) {
		return ProcessInfo{}, fmt.Errorf("pid %d: %w (reused by another process)", p.PID, ErrNoProcess)
	}
	return info, nil
}

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
			r.Fix = fmt.Sprintf("stop %s, or run: brokerctl reclaim %d --kill", r.Holders[0].Process, r.Port)
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

// ReclaimRequest asks to free a port.
type ReclaimRequest struct {
	Caller   Caller
	Port     int
	Protocol Protocol
	// Kill stops the processes holding the port; Force skips the graceful step.
	Kill  bool
	Force bool
	// Grace overrides the configured grace period when positive.
	Grace time.Duration
}

// ReclaimResult says what a reclaim did.
type ReclaimResult struct {
	Released *Lease
	Stopped  []Stopped
	Free     bool
	Detail   string
}

// ReclaimPort releases the lease on a port and, with Kill, stops the
// processes holding it, then re-checks that the port binds. Every process
// is checked against the kill-safety rules before anything is stopped.
func (b *Broker) ReclaimPort(ctx context.Context, req ReclaimRequest) (ReclaimResult, error) {
	if err := checkPort("port", req.Port, false); err != nil {
		return ReclaimResult{}, err
	}
	proto, err := checkProtocol(req.Protocol)
	if err != nil {
		return ReclaimResult{}, err
	}
	if req.Grace < 0 {
		return ReclaimResult{}, fieldErr("grace", "must not be negative, got %s", req.Grace)
	}
	port := uint16(req.Port)
	var lease *Lease
	b.mu.Lock()
	if e := b.byPort[port]; e != nil && e.state == stateLive {
		l := e.Lease
		lease = &l
	}
	b.mu.Unlock()
	if lease != nil {
		if err := b.mayChange(req.Caller, *lease); err != nil {
			return ReclaimResult{}, err
		}
	}

	var plan *stopPlan
	var holders []ProcessInfo
	if req.Kill {
		if holders, err = b.portHolders(port, proto); err != nil {
			return ReclaimResult{}, err
		}
		if len(holders) > 0 {
			why := fmt.Sprintf("reclaim of port %d", port)
			if plan, err = b.planStop(req.Caller, holders, why); err != nil {
				return ReclaimResult{}, err
			}
		}
	}

	var res ReclaimResult
	if lease != nil {
		l, err := b.end(ctx, lease.ID, EventReclaimed, ReasonForced, nil)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return ReclaimResult{}, err
		}
		if err == nil {
			res.Released = &l
		}
	}
	if plan != nil {
		grace := b.cfg.Grace
		if req.Grace > 0 {
			grace = req.Grace
		}
		res.Stopped = b.run(ctx, plan, grace, req.Force)
	}
	res.Free, res.Detail = b.waitFree(ctx, port, proto)
	if !res.Free && !req.Kill {
		if hs, _ := b.portHolders(port, proto); len(hs) > 0 {
			res.Detail = fmt.Sprintf("%s; held by %s (pass kill to stop it)", res.Detail, describe(hs))
		}
	}
	return res, nil
}

func describe(ps []ProcessInfo) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Process.String()
	}
	return strings.Join(parts, ", ")
}

// mayChange applies the lease rule: a lease may be released, renewed or
// reclaimed by its owner's user or an administrator. A caller the
// transport could not identify reached a per-user endpoint, so it is
// treated as that user.
func (b *Broker) mayChange(caller Caller, l Lease) error {
	if caller.User == "" || caller.Admin || caller.User == l.Owner.User {
		return nil
	}
	err := fmt.Errorf("lease %s belongs to user %s, not %s: %w", l.ID, l.Owner.User, caller.User, ErrPermission)
	b.log.Warn("lease change refused", "lease", l.ID, "caller_pid", caller.PID, "caller_user", caller.User, "owner_user", l.Owner.User)
	return err
}

// reclaimForAcquire stops what an earlier lease of the same name left
// behind: a live owner whose launcher died, or that name's previous owner
// still holding the preferred port. It never touches other processes.
func (b *Broker) reclaimForAcquire(ctx context.Context, caller Caller, a acquireArgs, reqPort int) error {
	b.mu.Lock()
	var orphan *Lease
	if e := b.byName[a.key]; e != nil && e.state == stateLive && !e.Owner.Same(a.owner) &&
		!e.Launcher.IsZero() && !b.alive(e.Launcher) && b.alive(e.Owner) {
		l := e.Lease
		orphan = &l
	}
	prev, hasPrev := b.prevOwners[a.key]
	port, _ := b.preferredPort(a.key, reqPort)
	b.mu.Unlock()

	why := fmt.Sprintf("acquire of %s with reclaim", a.key)
	if orphan != nil {
		b.mu.Lock()
		if b.reaping[orphan.ID] {
			b.mu.Unlock()
			return fmt.Errorf("name %s: its orphan is being stopped: %w; retry", a.key, ErrConflict)
		}
		b.reaping[orphan.ID] = true
		b.mu.Unlock()
		defer b.unreap(orphan.ID)
		if err := b.mayChange(caller, *orphan); err != nil {
			return err
		}
		owner, err := b.liveInfo(orphan.Owner)
		if err == nil {
			plan, err := b.planStop(caller, []ProcessInfo{owner}, why)
			if err != nil {
				return err
			}
			b.run(ctx, plan, b.cfg.Grace, false)
		}
		if _, err := b.end(ctx, orphan.ID, EventReclaimed, ReasonLauncherExited, nil); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	}
	if !hasPrev || port == 0 || b.holders == nil {
		return nil
	}
	prevInfo, err := b.liveInfo(prev)
	if err != nil {
		return nil // gone: nothing left behind
	}
	holders, err := b.portHolders(port, a.proto)
	if err != nil || len(holders) == 0 {
		return err
	}
	family := map[procKey]bool{keyOf(prev): true}
	if desc, err := b.inspect.Descendants(prev); err == nil {
		for _, d := range desc {
			family[keyOf(d.Process)] = true
		}
	}
	for _, h := range holders {
		if !family[keyOf(h.Process)] {
			return nil // someone else holds it too: leave it to the fallback
		}
	}
	plan, err := b.planStop(caller, []ProcessInfo{prevInfo}, why)
	if err != nil {
		return err
	}
	b.run(ctx, plan, b.cfg.Grace, false)
	b.waitFree(ctx, port, a.proto)
	return nil
}
