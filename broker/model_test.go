package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The model test drives the broker with random steps and holds it to a
// small reference model: which leases exist, whose they are, on which port
// and until when. Steps run one at a time with exact expectations, except
// bursts, which run several changes at once against a store that holds its
// writes while exits arrive; after a burst only the invariants are checked
// and the model takes the broker's leases as they are.
//
// After every step: Check(); the store holds exactly the broker's leases;
// no live lease has a dead owner; no forced stop came before its grace.

const (
	modelGrace   = 3 * time.Second
	modelTTL     = 5 * time.Second
	modelOwners  = 12 // owner PIDs 200..
	modelLaunch  = 4  // launcher PIDs 300..
	modelNames   = 6
	modelStepsCI = 300
)

// gatedStore is a memStore whose writes can be held, to put changes in
// flight while exits arrive, and failed, once each.
type gatedStore struct {
	*memStore
	mu   sync.Mutex
	gate chan struct{} // writes wait for it to close; nil when open
	// armed is set by failOnce, under memStore.mu.
	armed bool
}

func (s *gatedStore) wait() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (s *gatedStore) Put(ctx context.Context, l Lease) error {
	s.wait()
	return s.memStore.Put(ctx, l)
}

func (s *gatedStore) Delete(ctx context.Context, ids ...string) error {
	s.wait()
	return s.memStore.Delete(ctx, ids...)
}

func (s *gatedStore) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedStore) open() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func (s *gatedStore) failOnce() {
	s.memStore.mu.Lock()
	s.memStore.failNext = errDiskFull
	s.armed = true
	s.memStore.mu.Unlock()
}

// failUsed reports whether a failure set by failOnce was returned, and
// forgets it.
func (s *gatedStore) failUsed() bool {
	s.memStore.mu.Lock()
	defer s.memStore.mu.Unlock()
	used := s.armed && s.memStore.failNext == nil
	s.armed = false
	return used
}

func (s *gatedStore) clearFail() {
	s.memStore.mu.Lock()
	s.memStore.failNext = nil
	s.armed = false
	s.memStore.mu.Unlock()
}

type model struct {
	t       *testing.T
	rng     *rand.Rand
	host    *fakeHost
	store   *gatedStore
	watcher *fakeWatcher
	b       *Broker
	cfg     Config
	leases  map[NameKey]Lease
	// names holds the namespaces x names the steps pick from.
	names   []NameKey
	spawned int
}

func newModel(t *testing.T, seed uint64) *model {
	procs := newFakeProcs()
	m := &model{
		t:      t,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		host:   newFakeHost(procs),
		store:  &gatedStore{memStore: newMemStore()},
		leases: map[NameKey]Lease{},
		cfg: Config{
			Pool:  PoolConfig{Range: PortRange{First: 20000, Last: 20015}, Ephemeral: PortRange{First: 32768, Last: 60999}},
			Grace: modelGrace,
			Kill:  KillPolicy{SelfPID: 99, User: "1000"},
		},
	}
	for i := range modelNames {
		ns := "default"
		if i%3 == 2 {
			ns = "proj"
		}
		m.names = append(m.names, NameKey{Namespace: ns, Name: fmt.Sprintf("svc%d", i)})
	}
	for i := range modelLaunch {
		m.spawn(300+i, 0)
	}
	m.open()
	return m
}

func (m *model) open() {
	m.t.Helper()
	m.watcher = newFakeWatcher(m.host.fakeProcs)
	b, err := Open(context.Background(), m.cfg, Deps{
		Store: m.store, Processes: m.host, Prober: m.host, Watcher: m.watcher,
		Inspector: m.host, Holders: m.host, Killer: m.host,
	})
	if err != nil {
		m.t.Fatalf("Open: %v", err)
	}
	m.b = b
}

// owner returns a live owner PID, starting one (under a live launcher, or
// none) when the pick is dead.
func (m *model) owner() int {
	pid := 200 + m.rng.IntN(modelOwners)
	if !m.host.isAlive(pid) {
		parent := 0
		if l := 300 + m.rng.IntN(modelLaunch); m.host.isAlive(l) && m.rng.IntN(3) > 0 {
			parent = l
		}
		m.spawn(pid, parent)
		m.host.mu.Lock()
		m.host.stubborn[pid] = m.rng.IntN(4) == 0
		m.host.mu.Unlock()
	}
	return pid
}

// spawn starts pid under parent with a start time no earlier process of
// that PID had, as a reused PID would.
func (m *model) spawn(pid, parent int) {
	m.host.spawnChild(pid, parent)
	m.spawned++
	m.host.mu.Lock()
	p := m.host.procs[pid]
	p.StartTime = p.StartTime.Add(time.Duration(m.spawned) * time.Hour)
	m.host.procs[pid] = p
	m.host.mu.Unlock()
}

func (m *model) parentOf(pid int) int {
	m.host.mu.Lock()
	defer m.host.mu.Unlock()
	return m.host.parent[pid]
}

func (m *model) proc(pid int) Process {
	p, err := m.host.Lookup(pid)
	if err != nil {
		m.t.Fatalf("lookup %d: %v", pid, err)
	}
	return p
}

// randomLeaseID is a leased ID, or now and then one no lease has.
func (m *model) randomLeaseID() (string, bool) {
	if len(m.leases) == 0 || m.rng.IntN(10) == 0 {
		return "0123456789abcdef", false
	}
	keys := slices.SortedFunc(maps.Keys(m.leases), func(a, b NameKey) int {
		return compareKeys(a, b)
	})
	return m.leases[keys[m.rng.IntN(len(keys))]].ID, true
}

func compareKeys(a, b NameKey) int {
	if a.Namespace != b.Namespace {
		if a.Namespace < b.Namespace {
			return -1
		}
		return 1
	}
	if a.Name < b.Name {
		return -1
	}
	if a.Name > b.Name {
		return 1
	}
	return 0
}

func (m *model) byID(id string) (NameKey, Lease, bool) {
	for k, l := range m.leases {
		if l.ID == id {
			return k, l, true
		}
	}
	return NameKey{}, Lease{}, false
}

// step runs one random step and checks the broker against the model.
func (m *model) step(i int) {
	m.t.Helper()
	ctx := context.Background()
	failing := m.rng.IntN(8) == 0
	if failing {
		m.store.failOnce()
	}
	op := m.rng.IntN(100)
	m.t.Logf("step %d: op %d, failing store %v", i, op, failing)
	switch {
	case op < 30:
		m.acquire(ctx, failing)
	case op < 42:
		id, known := m.randomLeaseID()
		k, want, _ := m.byID(id)
		_, err := m.b.Release(ctx, Caller{}, id)
		switch {
		case !known:
			m.expect(i, "release of unknown id", err, ErrNotFound)
		case failing:
			m.expectFail(i, "release with a failing store", err)
		default:
			m.expect(i, "release "+want.Name, err, nil)
			delete(m.leases, k)
		}
	case op < 52:
		id, known := m.randomLeaseID()
		k, want, _ := m.byID(id)
		got, err := m.b.Renew(ctx, Caller{}, id, 0)
		switch {
		case !known:
			m.expect(i, "renew of unknown id", err, ErrNotFound)
		case want.TTL == 0:
			m.expect(i, "renew without a TTL", err, ErrInvalid)
		case failing:
			m.expectFail(i, "renew with a failing store", err)
		default:
			m.expect(i, "renew", err, nil)
			if !got.ExpiresAt.Equal(time.Now().Add(want.TTL)) {
				m.t.Fatalf("step %d: renewed to %v, want now + %v", i, got.ExpiresAt, want.TTL)
			}
			m.leases[k] = got
		}
	case op < 64:
		m.ownerExit(i, failing)
	case op < 70:
		m.launcherExit(i)
	case op < 85:
		m.advance(time.Duration(m.rng.IntN(8000)) * time.Millisecond)
	case op < 90:
		m.store.clearFail()
		m.restart(i)
	default:
		m.store.clearFail()
		m.burst(i)
	}
	m.store.clearFail()
	m.verify(i)
}

func (m *model) expect(i int, what string, err, want error) {
	m.t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		m.t.Fatalf("step %d: %s: err = %v, want %v", i, what, err, want)
	}
}

func (m *model) expectFail(i int, what string, err error) {
	m.t.Helper()
	if !errors.Is(err, errDiskFull) {
		m.t.Fatalf("step %d: %s: err = %v, want the store's error", i, what, err)
	}
}

var errDiskFull = errors.New("disk full")

func (m *model) acquire(ctx context.Context, failing bool) {
	m.t.Helper()
	key := m.names[m.rng.IntN(len(m.names))]
	ownerPID := m.owner()
	req := AcquireRequest{Name: key.Name, Namespace: key.Namespace, OwnerPID: ownerPID}
	if par := m.parentOf(ownerPID); par != 0 && m.host.isAlive(par) && m.rng.IntN(2) == 0 {
		req.LauncherPID = par
	}
	if m.rng.IntN(3) == 0 {
		req.TTL = modelTTL
	}
	if m.rng.IntN(3) == 0 {
		req.Port = 20000 + m.rng.IntN(20) // some outside the pool
	}
	res, err := m.b.Acquire(ctx, req)
	owner := m.proc(ownerPID)
	cur, held := m.leases[key]
	switch {
	case held && cur.Owner.Same(owner):
		if cur.TTL != req.TTL {
			m.expect(-1, "re-acquire with another TTL", err, ErrMismatch)
			return
		}
		m.expect(-1, "re-acquire", err, nil)
		if !res.Existing || res.Lease.ID != cur.ID {
			m.t.Fatalf("re-acquire of %s by its owner gave %+v, want lease %s back", key, res, cur.ID)
		}
	case held:
		m.expect(-1, "acquire of a held name", err, ErrNameTaken)
	case failing:
		m.expectFail(-1, "acquire with a failing store", err)
	default:
		// Six names in a pool of sixteen ports: never exhausted.
		m.expect(-1, "acquire of a free name", err, nil)
		l := res.Lease
		if !l.Owner.Same(owner) || l.Key() != key || l.TTL != req.TTL {
			m.t.Fatalf("acquire gave %+v for %+v", l, req)
		}
		for k, o := range m.leases {
			if o.Port == l.Port {
				m.t.Fatalf("acquire of %s got port %d, leased to %s", key, l.Port, k)
			}
		}
		m.leases[key] = l
	}
}

// ownerExit kills a live owner of some lease; its leases go. With a
// failing store the first reclaim fails and is retried.
func (m *model) ownerExit(i int, failing bool) {
	m.t.Helper()
	id, known := m.randomLeaseID()
	if !known {
		return
	}
	_, l, _ := m.byID(id)
	m.host.kill(l.Owner.PID)
	synctest.Wait()
	if failing {
		// One of the owner's leases failed to go; it is retried.
		kept := 0
		for _, o := range m.b.List("") {
			if o.Owner.Same(l.Owner) {
				kept++
			}
		}
		if kept != 1 {
			m.t.Fatalf("step %d: %d leases of %v left after its exit with one failing store write, want 1", i, kept, l.Owner)
		}
		m.advance(retryDelay)
	}
	m.dropOwner(l.Owner)
}

func (m *model) dropOwner(p Process) {
	for k, l := range m.leases {
		if l.Owner.Same(p) {
			delete(m.leases, k)
		}
	}
}

// launcherExit kills a launcher; the orphan rule stops the owners of the
// leases it launched, after their grace when they ignore SIGTERM.
func (m *model) launcherExit(i int) {
	m.t.Helper()
	pid := 300 + m.rng.IntN(modelLaunch)
	if !m.host.isAlive(pid) {
		m.spawn(pid, 0)
		return
	}
	launcher := m.proc(pid)
	var owners []Process
	for _, l := range m.leases {
		if l.Launcher.Same(launcher) && m.host.isAlive(l.Owner.PID) {
			owners = append(owners, l.Owner)
		}
	}
	m.t.Logf("launcher %v exits; owners %v", launcher, owners)
	m.host.kill(pid)
	m.drainStops()
	for _, o := range owners {
		if m.host.isAlive(o.PID) {
			if cur, _ := m.host.Lookup(o.PID); cur.Same(o) {
				m.t.Fatalf("step %d: owner %v of a lease launched by %v still runs after the orphan rule", i, o, launcher)
			}
		}
		m.dropOwner(o)
	}
}

// drainStops lets stops under way finish: grace, forced wait, port checks.
func (m *model) drainStops() {
	synctest.Wait()
	m.advance(modelGrace + forcedWait + time.Duration(freeChecks)*freeInterval + time.Second)
}

// advance moves the clock; TTL leases past their time go.
func (m *model) advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
	if m.store.failUsed() {
		// An end the broker made by itself failed: it retries.
		time.Sleep(retryDelay)
		synctest.Wait()
	}
	now := time.Now()
	for k, l := range m.leases {
		if l.TTL > 0 && !now.Before(l.ExpiresAt) {
			delete(m.leases, k)
		}
	}
}

// restart closes the broker and opens another on the same store.
func (m *model) restart(i int) {
	m.t.Helper()
	if err := m.b.Check(); err != nil {
		m.t.Fatalf("step %d: before restart: %v", i, err)
	}
	m.b.Close()
	m.open()
	synctest.Wait()
}

// burst runs several changes at once while the store holds its writes,
// kills processes meanwhile, then lets everything finish. The outcome
// depends on the interleaving, so only the invariants are checked and the
// model takes the broker's leases.
func (m *model) burst(i int) {
	m.t.Helper()
	m.store.hold()
	var wg sync.WaitGroup
	n := 2 + m.rng.IntN(4)
	for range n {
		switch m.rng.IntN(3) {
		case 0:
			key := m.names[m.rng.IntN(len(m.names))]
			req := AcquireRequest{Name: key.Name, Namespace: key.Namespace, OwnerPID: m.owner()}
			if m.rng.IntN(2) == 0 {
				req.TTL = modelTTL
			}
			wg.Go(func() { m.b.Acquire(context.Background(), req) })
		case 1:
			id, _ := m.randomLeaseID()
			wg.Go(func() { m.b.Release(context.Background(), Caller{}, id) })
		case 2:
			id, _ := m.randomLeaseID()
			wg.Go(func() { m.b.Renew(context.Background(), Caller{}, id, 0) })
		}
	}
	synctest.Wait() // every change is in flight or waiting for one
	for range 1 + m.rng.IntN(3) {
		if m.rng.IntN(2) == 0 {
			m.host.kill(200 + m.rng.IntN(modelOwners))
		} else {
			m.host.kill(300 + m.rng.IntN(modelLaunch))
		}
	}
	synctest.Wait()
	m.store.open()
	wg.Wait()
	m.drainStops()
	clear(m.leases)
	for _, l := range m.b.List("") {
		m.leases[l.Key()] = l
	}
}

// verify checks the broker against the model and the invariants.
func (m *model) verify(i int) {
	m.t.Helper()
	synctest.Wait()
	if err := m.b.Check(); err != nil {
		m.t.Fatalf("step %d: Check: %v", i, err)
	}
	got := map[NameKey]Lease{}
	for _, l := range m.b.List("") {
		got[l.Key()] = l
		if cur, err := m.host.Lookup(l.Owner.PID); err != nil || !cur.Same(l.Owner) {
			m.t.Fatalf("step %d: lease %s of %s is live, its owner %v dead", i, l.ID, l.Key(), l.Owner)
		}
	}
	for k, want := range m.leases {
		l, ok := got[k]
		if !ok {
			m.t.Fatalf("step %d: lease %s of %s missing; broker has %v, model %v", i, want.ID, k, got, m.leases)
		}
		if l.ID != want.ID || l.Port != want.Port || !l.ExpiresAt.Equal(want.ExpiresAt) {
			m.t.Fatalf("step %d: lease of %s = %+v, model %+v", i, k, l, want)
		}
	}
	if len(got) != len(m.leases) {
		m.t.Fatalf("step %d: broker has %d leases, model %d: %v", i, len(got), len(m.leases), slices.Collect(maps.Keys(got)))
	}
	stored := m.store.snapshot()
	if len(stored) != len(got) {
		m.t.Fatalf("step %d: store has %d leases, broker %d", i, len(stored), len(got))
	}
	for _, l := range got {
		if _, ok := stored[l.ID]; !ok {
			m.t.Fatalf("step %d: live lease %s not stored", i, l.ID)
		}
	}
	m.checkGraces(i)
}

// checkGraces verifies that every forced stop came at least a grace after
// the graceful one, and never without one.
func (m *model) checkGraces(i int) {
	m.t.Helper()
	m.host.mu.Lock()
	defer m.host.mu.Unlock()
	term := map[procKey]time.Time{}
	for _, s := range m.host.sigLog {
		k := keyOf(s.proc)
		switch s.sig {
		case "TERM":
			term[k] = s.at
		case "KILL":
			t0, ok := term[k]
			if !ok {
				m.t.Fatalf("step %d: %v killed with no graceful stop first", i, s.proc)
			}
			if s.at.Sub(t0) < modelGrace {
				m.t.Fatalf("step %d: %v killed %v after SIGTERM, before its grace %v", i, s.proc, s.at.Sub(t0), modelGrace)
			}
		}
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, seed)
		defer func() {
			m.store.open()
			m.b.Close()
		}()
		for i := range steps {
			m.step(i)
		}
	})
}

// TestModel runs fixed seeds, so a failure reproduces.
func TestModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, modelStepsCI) })
	}
}

// TestModelRandom runs a fresh seed each time and prints it on failure.
func TestModelRandom(t *testing.T) {
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("MODEL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: MODEL_SEED=%d go test -run TestModelRandom ./broker", seed)
		}
	})
	runModel(t, seed, modelStepsCI)
}
