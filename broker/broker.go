package broker

import (
	"context"
	"errors"
	"log/slog"
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
	// forced step; zero (unset) means DefaultGrace, negative is refused.
	// The configuration file refuses an explicit 0: a stop never skips its
	// grace, and force-at-once is a per-request choice (reclaim --force).
	Grace time.Duration
	// Kill holds the kill-safety rules' facts about the daemon.
	Kill KillPolicy
	// Limits caps what callers may hold; zero fields take the defaults.
	Limits Limits
	// Shared holds the fairness rules of a daemon several users share.
	Shared SharedPolicy
}

// Limits caps leases and watchers so that one runaway client cannot
// exhaust the daemon.
type Limits struct {
	Leases        int
	LeasesPerUser int
	Watchers      int
	// UserShare caps one user's leases on a shared daemon (a socket
	// group); 0 means half the pool, so no user can take every port.
	UserShare int
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

// storeTimeout bounds store writes the broker makes on its own behalf.
const storeTimeout = 30 * time.Second

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
	// names bounds lastPorts and prevOwners to NameMemory names.
	names   *nameOrder
	pool    *pool
	due     dueQueue
	subs    map[*Subscription]struct{}
	ordered orderedView
	closed  bool

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
	if cfg.Grace < 0 {
		return nil, fieldErr("reclaim.grace", "must not be negative, got %s", cfg.Grace)
	}
	if cfg.Grace == 0 {
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
		names:      newNameOrder(NameMemory),
		pool:       p,
		subs:       make(map[*Subscription]struct{}),
		poke:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if err := b.restore(ctx); err != nil {
		return nil, err
	}
	b.wg.Add(1)
	go b.dueLoop()
	if b.watcher != nil {
		b.wg.Add(1)
		go b.exitLoop()
	}
	b.orphansAtStart()
	return b, nil
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
