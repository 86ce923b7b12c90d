package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Service is a name the configuration gives a preferred port.
type Service struct {
	Port     uint16
	Protocol Protocol
}

// Config is the broker's configuration.
type Config struct {
	Pool PoolConfig
	// Services maps names in the default namespace to preferred ports.
	Services map[string]Service
	Logger   *slog.Logger
	// Orphans says what to do with a live owner whose launcher exited.
	Orphans OrphanPolicy
	// Grace is how long a stopped process has between the graceful and the
	// forced step; zero means DefaultGrace.
	Grace time.Duration
	// Kill holds the kill-safety rules' facts about the daemon.
	Kill KillPolicy
	// Limits caps what callers may hold; zero fields take the defaults.
	Limits Limits
}

// Limits caps leases and watchers so that one runaway client cannot
// exhaust the daemon.
type Limits struct {
	Leases        int
	LeasesPerUser int
	Watchers      int
}

// DefaultLimits are generous: far above any dev stack, well below what
// would strain the daemon.
var DefaultLimits = Limits{Leases: 65536, LeasesPerUser: 16384, Watchers: 256}

// OrphanPolicy says what happens to a service whose launcher died.
type OrphanPolicy uint8

const (
	// OrphanKill stops the orphaned service tree and reclaims its lease.
	OrphanKill OrphanPolicy = iota
	// OrphanKeep leaves it running with its lease.
	OrphanKeep
)

// DefaultGrace is the default time between the graceful and the forced stop.
const DefaultGrace = 5 * time.Second

// Deps are the broker's ways to reach the host.
type Deps struct {
	Store     Store
	Processes ProcessTable
	Prober    Prober
	// Watcher reports owner exits; nil leaves reclaim to TTLs and restarts.
	Watcher ExitWatcher
	// Inspector, Holders and Killer let the broker find and stop the
	// processes holding ports; without them InspectPort reports no holders
	// and kills are refused as unsupported.
	Inspector ProcessInspector
	Holders   PortHolders
	Killer    Killer
}

// maxProbes bounds the candidates one request tries, so a host where most
// of the pool fails to bind answers quickly instead of probing every port.
const maxProbes = 64

// storeTimeout bounds store writes the broker makes on its own behalf.
const storeTimeout = 30 * time.Second

type entryState uint8

const (
	// pending: acquired in memory, not yet durable; invisible to readers.
	statePending entryState = iota
	stateLive
	// stateBusy: a renew or an end is being made durable.
	stateBusy
)

type entry struct {
	Lease
	state entryState
}

// procKey identifies a process for the watch index.
type procKey struct {
	pid   int
	start int64
}

func keyOf(p Process) procKey { return procKey{p.PID, p.StartTime.UnixMilli()} }

// Broker leases ports. It is safe for concurrent use.
type Broker struct {
	cfg     Config
	store   Store
	procs   ProcessTable
	prober  Prober
	watcher ExitWatcher
	inspect ProcessInspector
	holders PortHolders
	killer  Killer
	log     *slog.Logger

	mu      sync.Mutex
	byID    map[string]*entry
	byName  map[NameKey]*entry
	byPort  map[uint16]*entry
	byProc  map[procKey]map[string]*entry // owner or launcher -> leases
	perUser map[string]int
	// reaping holds leases whose owner tree the broker is stopping; their
	// owner's exit is part of that stop, not a separate reclaim.
	reaping   map[string]bool
	watched   map[procKey]Process
	lastPorts map[NameKey]uint16
	// prevOwners remembers the owner of each name's last ended lease, so
	// that acquire with reclaim can tell that name's leftover process from
	// an unrelated one.
	prevOwners map[NameKey]Process
	pool       *pool
	expiries   expiryHeap
	subs       map[*Subscription]struct{}
	closed     bool

	poke chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// Open restores the broker from its store, reclaims leases whose owners
// died while it was down, and starts watching the rest.
func Open(ctx context.Context, cfg Config, deps Deps) (*Broker, error) {
	if deps.Store == nil || deps.Processes == nil || deps.Prober == nil {
		return nil, errors.New("broker: store, process table and prober are required")
	}
	p, err := newPool(cfg.Pool)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Limits.Leases <= 0 {
		cfg.Limits.Leases = DefaultLimits.Leases
	}
	if cfg.Limits.LeasesPerUser <= 0 {
		cfg.Limits.LeasesPerUser = DefaultLimits.LeasesPerUser
	}
	if cfg.Limits.Watchers <= 0 {
		cfg.Limits.Watchers = DefaultLimits.Watchers
	}
	b := &Broker{
		cfg:        cfg,
		store:      deps.Store,
		procs:      deps.Processes,
		prober:     deps.Prober,
		watcher:    deps.Watcher,
		inspect:    deps.Inspector,
		holders:    deps.Holders,
		killer:     deps.Killer,
		log:        log,
		byID:       make(map[string]*entry),
		byName:     make(map[NameKey]*entry),
		byPort:     make(map[uint16]*entry),
		byProc:     make(map[procKey]map[string]*entry),
		perUser:    make(map[string]int),
		reaping:    make(map[string]bool),
		watched:    make(map[procKey]Process),
		lastPorts:  make(map[NameKey]uint16),
		prevOwners: make(map[NameKey]Process),
		pool:       p,
		subs:       make(map[*Subscription]struct{}),
		poke:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if err := b.restore(ctx); err != nil {
		return nil, err
	}
	b.wg.Add(1)
	go b.expireLoop()
	if b.watcher != nil {
		b.wg.Add(1)
		go b.exitLoop()
	}
	b.orphansAtStart()
	return b, nil
}

// restore loads the store and keeps the leases whose owners still live.
func (b *Broker) restore(ctx context.Context) error {
	st, err := b.store.Load(ctx)
	if err != nil {
		return err
	}
	maps.Copy(b.lastPorts, st.LastPorts)
	now := time.Now()
	var gone []Lease
	var reasons []Reason
	// Many leases share an owner; look each PID up once.
	live := map[int]Process{}
	alive := func(p Process) bool {
		lp, ok := live[p.PID]
		if !ok {
			var err error
			if lp, err = b.procs.Lookup(p.PID); err != nil {
				lp = Process{}
			}
			live[p.PID] = lp
		}
		return lp.PID != 0 && lp.Same(p)
	}
	for _, l := range st.Leases {
		reason := ReasonNone
		switch {
		case l.TTL > 0 && !now.Before(l.ExpiresAt):
			reason = ReasonTTLExpired
		case !alive(l.Owner):
			reason = ReasonOwnerExited
		}
		if reason == ReasonNone {
			if other := b.byPort[l.Port]; other != nil {
				// Two stored leases on one port cannot both be right; keep the older.
				b.log.Warn("stored lease shares its port with another; dropping the newer",
					"lease", l.ID, "other", other.ID, "port", l.Port)
				reason = ReasonForced
			} else if b.byName[l.Key()] != nil {
				b.log.Warn("stored lease shares its name with another; dropping it", "lease", l.ID, "name", l.Key())
				reason = ReasonForced
			}
		}
		if reason != ReasonNone {
			gone = append(gone, l)
			reasons = append(reasons, reason)
			continue
		}
		b.insert(&entry{Lease: l, state: stateLive})
	}
	if len(gone) > 0 {
		ids := make([]string, len(gone))
		for i, l := range gone {
			ids[i] = l.ID
		}
		if err := b.store.Delete(ctx, ids...); err != nil {
			return fmt.Errorf("reclaim leases of owners that died while the broker was down: %w", err)
		}
		for i, l := range gone {
			b.log.Info("lease reclaimed at start", leaseAttrs(l, "reason", reasons[i].String())...)
		}
	}
	var procs []Process
	for _, e := range b.byID {
		if e.TTL > 0 {
			b.expiries.push(e.ExpiresAt, e.ID)
		}
		procs = append(procs, b.indexProcs(e)...)
	}
	b.watch(procs)
	return nil
}

// orphansAtStart handles leases whose launcher died while the broker was
// down and whose owner lives on.
func (b *Broker) orphansAtStart() {
	b.mu.Lock()
	var orphans []Lease
	for _, e := range b.byID {
		if !e.Launcher.IsZero() && !b.alive(e.Launcher) {
			orphans = append(orphans, e.Lease)
		}
	}
	b.mu.Unlock()
	for _, l := range orphans {
		b.orphaned(l)
	}
}

// alive reports whether p still runs: the same PID with the same start time.
func (b *Broker) alive(p Process) bool {
	live, err := b.procs.Lookup(p.PID)
	return err == nil && live.Same(p)
}

// Close stops the broker's goroutines and its watcher and ends every
// subscription. It does not close the store, which the caller owns.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for s := range b.subs {
		s.end(ErrClosed)
	}
	clear(b.subs)
	b.mu.Unlock()
	close(b.done)
	var err error
	if b.watcher != nil {
		err = b.watcher.Close()
	}
	b.wg.Wait()
	return err
}

// AcquireRequest asks for a lease.
type AcquireRequest struct {
	Caller    Caller
	Name      string
	Namespace string
	// Port is the preferred port; 0 means any.
	Port        int
	Protocol    Protocol
	OwnerPID    int
	LauncherPID int
	TTL         time.Duration
	Strict      bool
	Reclaim     bool
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
	// A second pass follows only after a stale lease of the same name was
	// reclaimed, so two are enough.
	for range 2 {
		res, stale, err := b.acquireLocked(req, a)
		if stale == nil {
			if err != nil || res.Existing {
				return res, err
			}
			return b.commitAcquire(ctx, res)
		}
		if _, err := b.end(ctx, stale.ID, EventReclaimed, ReasonOwnerExited, nil); err != nil && !errors.Is(err, ErrNotFound) {
			return AcquireResult{}, err
		}
	}
	return AcquireResult{}, fmt.Errorf("name %s: %w", a.key, ErrConflict)
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

// acquireLocked picks a port and records a pending lease. It returns a stale
// lease instead when the name is held by an owner that has died, for the
// caller to reclaim before trying again.
func (b *Broker) acquireLocked(req AcquireRequest, a acquireArgs) (AcquireResult, *entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return AcquireResult{}, nil, ErrClosed
	}
	if e := b.byName[a.key]; e != nil {
		if e.state != stateLive {
			return AcquireResult{}, nil, fmt.Errorf("name %s: %w; retry", a.key, ErrConflict)
		}
		if e.Owner.Same(a.owner) {
			return AcquireResult{Lease: e.Lease, Existing: true}, nil, nil
		}
		if !b.alive(e.Owner) {
			return AcquireResult{}, e, nil
		}
		return AcquireResult{}, nil, fmt.Errorf("name %s is leased to %s on port %d: %w", a.key, e.Owner, e.Port, ErrNameTaken)
	}

	if len(b.byID) >= b.cfg.Limits.Leases {
		return AcquireResult{}, nil, fmt.Errorf("the daemon holds %d leases, its limit (limits.leases): %w", len(b.byID), ErrExhausted)
	}
	if n := b.perUser[a.owner.User]; n >= b.cfg.Limits.LeasesPerUser {
		return AcquireResult{}, nil, fmt.Errorf("user %s holds %d leases, the per-user limit (limits.leases_per_user): %w", a.owner.User, n, ErrExhausted)
	}
	now := time.Now()
	var res AcquireResult
	port, explicit := b.preferredPort(a.key, req.Port)
	if port != 0 {
		if err := b.usable(port, a.proto); err != nil {
			var held *PortHeldError
			if req.Strict && explicit {
				return AcquireResult{}, nil, err
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
		}
	}
	if port == 0 {
		var err error
		if port, err = b.pick(a.proto, now); err != nil {
			return AcquireResult{}, nil, err
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
	b.insert(&entry{Lease: l, state: statePending})
	res.Lease = l
	return res, nil, nil
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
		return 0, fmt.Errorf("all %d ports of pool %s are leased or failed to bind: %w", b.pool.size, b.pool.rng, ErrExhausted)
	}
	return 0, fmt.Errorf("%d ports of pool %s in a row failed to bind: %w", maxProbes, b.pool.rng, ErrExhausted)
}

// commitAcquire makes a pending lease durable, then live.
func (b *Broker) commitAcquire(ctx context.Context, res AcquireResult) (AcquireResult, error) {
	l := res.Lease
	if err := b.store.Put(ctx, l); err != nil {
		b.mu.Lock()
		if e := b.byID[l.ID]; e != nil {
			b.remove(e)
		}
		b.mu.Unlock()
		return AcquireResult{}, fmt.Errorf("store lease %s: %w", l.ID, err)
	}
	b.mu.Lock()
	e := b.byID[l.ID]
	e.state = stateLive
	b.lastPorts[l.Key()] = l.Port
	if l.TTL > 0 {
		b.expiries.push(l.ExpiresAt, l.ID)
		b.wake()
	}
	procs := b.indexProcs(e)
	b.publish(Event{Type: EventAcquired, Lease: l, Time: time.Now()})
	b.mu.Unlock()
	b.watch(procs)
	b.log.Info("lease acquired", leaseAttrs(l, "fallback", res.FallbackReason)...)
	return res, nil
}

// insert adds e to the indexes and takes its port.
func (b *Broker) insert(e *entry) {
	b.byID[e.ID] = e
	b.byName[e.Key()] = e
	b.byPort[e.Port] = e
	b.pool.take(e.Port)
	b.perUser[e.Owner.User]++
}

// remove drops e from the indexes and frees its port. It returns the
// processes no lease needs watched any more.
func (b *Broker) remove(e *entry) []Process {
	delete(b.byID, e.ID)
	delete(b.byName, e.Key())
	if b.perUser[e.Owner.User]--; b.perUser[e.Owner.User] <= 0 {
		delete(b.perUser, e.Owner.User)
	}
	if b.byPort[e.Port] == e {
		delete(b.byPort, e.Port)
		b.pool.give(e.Port)
	}
	var unwatch []Process
	for _, p := range []Process{e.Owner, e.Launcher} {
		if p.IsZero() {
			continue
		}
		k := keyOf(p)
		if set := b.byProc[k]; set != nil {
			delete(set, e.ID)
			if len(set) == 0 {
				delete(b.byProc, k)
				if wp, ok := b.watched[k]; ok {
					delete(b.watched, k)
					unwatch = append(unwatch, wp)
				}
			}
		}
	}
	return unwatch
}

// indexProcs records e under its owner and launcher and returns the
// processes that need a new watch.
func (b *Broker) indexProcs(e *entry) []Process {
	var add []Process
	for _, p := range []Process{e.Owner, e.Launcher} {
		if p.IsZero() {
			continue
		}
		k := keyOf(p)
		set := b.byProc[k]
		if set == nil {
			set = make(map[string]*entry)
			b.byProc[k] = set
		}
		set[e.ID] = e
		if _, ok := b.watched[k]; !ok && b.watcher != nil {
			b.watched[k] = p
			add = append(add, p)
		}
	}
	return add
}

// watch starts watching procs. A process the watcher cannot watch is
// checked again at once, so an owner that died in between is still seen.
func (b *Broker) watch(procs []Process) {
	if b.watcher == nil {
		return
	}
	for _, p := range procs {
		if err := b.watcher.Add(p); err != nil {
			b.log.Warn("cannot watch process; its leases are reclaimed at the next restart or TTL", "pid", p.PID, "err", err)
		}
	}
}

func (b *Broker) unwatch(procs []Process) {
	if b.watcher == nil {
		return
	}
	for _, p := range procs {
		b.watcher.Remove(p)
	}
}

// Release ends a lease at its owner's request.
func (b *Broker) Release(ctx context.Context, caller Caller, id string) (Lease, error) {
	if err := checkLeaseID(id); err != nil {
		return Lease{}, err
	}
	return b.end(ctx, id, EventReleased, ReasonNone, func(e *entry) error { return b.mayChange(caller, e.Lease) })
}

// end removes a live lease durably and announces it.
func (b *Broker) end(ctx context.Context, id string, typ EventType, reason Reason, check func(*entry) error) (Lease, error) {
	b.mu.Lock()
	e, err := b.liveLocked(id)
	if err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if check != nil {
		if err := check(e); err != nil {
			b.mu.Unlock()
			return Lease{}, err
		}
	}
	e.state = stateBusy
	b.mu.Unlock()

	if err := b.store.Delete(ctx, id); err != nil {
		b.mu.Lock()
		e.state = stateLive
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("delete lease %s: %w", id, err)
	}
	b.mu.Lock()
	unwatch := b.remove(e)
	b.prevOwners[e.Key()] = e.Owner
	b.publish(Event{Type: typ, Lease: e.Lease, Reason: reason, Time: time.Now()})
	b.mu.Unlock()
	b.unwatch(unwatch)
	b.log.Info("lease "+typ.String(), leaseAttrs(e.Lease, "reason", reason.String())...)
	return e.Lease, nil
}

// liveLocked returns the live lease with this id; the caller holds b.mu.
func (b *Broker) liveLocked(id string) (*entry, error) {
	e := b.byID[id]
	switch {
	case b.closed:
		return nil, ErrClosed
	case e == nil || e.state == statePending:
		return nil, fmt.Errorf("lease %s: %w", id, ErrNotFound)
	case e.state != stateLive:
		return nil, fmt.Errorf("lease %s: %w; retry", id, ErrConflict)
	}
	return e, nil
}

// Renew restarts a TTL lease's clock, with a new TTL when ttl > 0.
func (b *Broker) Renew(ctx context.Context, caller Caller, id string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseID(id); err != nil {
		return Lease{}, err
	}
	if err := checkTTL("ttl", ttl); err != nil {
		return Lease{}, err
	}
	b.mu.Lock()
	e, err := b.liveLocked(id)
	if err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if err := b.mayChange(caller, e.Lease); err != nil {
		b.mu.Unlock()
		return Lease{}, err
	}
	if ttl == 0 && e.TTL == 0 {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("lease %s has no TTL to renew: %w", id, fieldErr("ttl", "must be given for a lease without a TTL"))
	}
	l := e.Lease
	if ttl > 0 {
		l.TTL = ttl
	}
	l.ExpiresAt = time.Now().Add(l.TTL)
	e.state = stateBusy
	b.mu.Unlock()

	err = b.store.Put(ctx, l)
	b.mu.Lock()
	e.state = stateLive
	if err != nil {
		b.mu.Unlock()
		return Lease{}, fmt.Errorf("store lease %s: %w", id, err)
	}
	e.Lease = l
	b.expiries.push(l.ExpiresAt, l.ID)
	b.wake()
	b.publish(Event{Type: EventRenewed, Lease: l, Time: time.Now()})
	b.mu.Unlock()
	// Keepalives renew every few seconds; info would drown the other changes.
	b.log.Debug("lease renewed", leaseAttrs(l, "expires_at", l.ExpiresAt.Format(time.RFC3339))...)
	return l, nil
}

// Get returns the live lease with this id.
func (b *Broker) Get(id string) (Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.byID[id]
	if e == nil || e.state == statePending {
		return Lease{}, fmt.Errorf("lease %s: %w", id, ErrNotFound)
	}
	return e.Lease, nil
}

// List returns the live leases, sorted by namespace, name and id. An empty
// namespace lists all of them.
func (b *Broker) List(namespace string) []Lease {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listLocked(namespace)
}

func (b *Broker) listLocked(namespace string) []Lease {
	out := make([]Lease, 0, len(b.byID))
	for _, e := range b.byID {
		if e.state != statePending && (namespace == "" || e.Namespace == namespace) {
			out = append(out, e.Lease)
		}
	}
	slices.SortFunc(out, func(x, y Lease) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.ID, y.ID))
	})
	return out
}

// Status is a snapshot of the pool and the leases.
type Status struct {
	Pool        PortRange
	Ephemeral   PortRange
	Reserved    []PortRange
	Excluded    []PortRange
	PoolSize    int
	PoolFree    int
	Leases      int
	ByNamespace map[string]int
}

// Status returns a snapshot of the pool and the leases.
func (b *Broker) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{
		Pool:        b.pool.rng,
		Ephemeral:   b.pool.cfg.Ephemeral,
		Reserved:    slices.Clone(b.pool.cfg.Reserved),
		Excluded:    slices.Clone(b.pool.cfg.Exclude),
		PoolSize:    b.pool.size,
		PoolFree:    b.pool.free,
		ByNamespace: make(map[string]int),
	}
	for _, e := range b.byID {
		if e.state != statePending {
			s.Leases++
			s.ByNamespace[e.Namespace]++
		}
	}
	return s
}

// expireLoop ends TTL leases when their time is up.
func (b *Broker) expireLoop() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := time.Now()
		var due []string
		for {
			at, id, ok := b.expiries.peek()
			if !ok || at.After(now) {
				break
			}
			b.expiries.pop()
			if e := b.byID[id]; e != nil && e.state == stateLive && e.TTL > 0 && e.ExpiresAt.Equal(at) {
				due = append(due, id)
			}
		}
		next, _, hasNext := b.expiries.peek()
		b.mu.Unlock()

		for _, id := range due {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			_, err := b.end(ctx, id, EventExpired, ReasonTTLExpired, func(e *entry) error {
				if e.TTL == 0 || time.Now().Before(e.ExpiresAt) {
					return errRenewed
				}
				return nil
			})
			cancel()
			if err != nil && !errors.Is(err, errRenewed) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
				b.log.Error("expire lease", "lease", id, "err", err)
				// Try again shortly rather than keep an expired lease forever.
				b.mu.Lock()
				b.expiries.push(time.Now().Add(time.Second), id)
				b.mu.Unlock()
			}
		}
		wait := time.Hour
		if hasNext {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-b.done:
			return
		case <-b.poke:
		case <-timer.C:
		}
	}
}

var errRenewed = errors.New("renewed meanwhile")

// wake tells expireLoop the earliest expiry may have changed.
func (b *Broker) wake() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

// exitLoop reclaims the leases of owners that exit.
func (b *Broker) exitLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.done:
			return
		case p, ok := <-b.watcher.Exits():
			if !ok {
				return
			}
			b.processExited(p)
		}
	}
}

// processExited reclaims the leases p owned, and applies the orphan
// policy to the leases p launched for owners that still run.
func (b *Broker) processExited(p Process) {
	b.mu.Lock()
	k := keyOf(p)
	var owned []string
	var launched []Lease
	for id, e := range b.byProc[k] {
		switch {
		case b.reaping[id]:
		case keyOf(e.Owner) == k:
			owned = append(owned, id)
		case keyOf(e.Launcher) == k && e.state == stateLive:
			launched = append(launched, e.Lease)
		}
	}
	// The watcher reports each process once; forget it so that a later
	// lease of a reused PID is watched afresh.
	delete(b.watched, k)
	b.mu.Unlock()
	for _, id := range owned {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		_, err := b.end(ctx, id, EventReclaimed, ReasonOwnerExited, nil)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
			b.log.Error("reclaim lease of exited owner", "lease", id, "pid", p.PID, "err", err)
		}
	}
	for _, l := range launched {
		b.orphaned(l)
	}
}

func newID() string {
	var buf [8]byte
	_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails.
	return hex.EncodeToString(buf[:])
}

func leaseAttrs(l Lease, extra ...any) []any {
	attrs := []any{
		"lease", l.ID, "name", l.Name, "namespace", l.Namespace, "port", l.Port,
		"protocol", l.Protocol.String(), "owner_pid", l.Owner.PID, "owner", l.Owner.Name,
	}
	if !l.Launcher.IsZero() {
		attrs = append(attrs, "launcher_pid", l.Launcher.PID)
	}
	if l.TTL > 0 {
		attrs = append(attrs, "ttl", l.TTL)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if s, ok := extra[i+1].(string); ok && s == "" {
			continue
		}
		attrs = append(attrs, extra[i], extra[i+1])
	}
	return attrs
}
