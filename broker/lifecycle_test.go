package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// newGatedRig is a rig whose store can hold its writes.
func newGatedRig(t *testing.T, cfg Config) (*rig, *gatedStore) {
	t.Helper()
	r := newRig(t, cfg)
	r.b.Close()
	gs := &gatedStore{memStore: r.store}
	procs := r.procs
	r.watcher = newFakeWatcher(procs)
	if cfg.Pool.Range == (PortRange{}) {
		cfg.Pool = smallPool
	}
	b, err := Open(context.Background(), cfg, Deps{Store: gs, Processes: procs, Prober: r.prober, Watcher: r.watcher})
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	t.Cleanup(func() {
		gs.open()
		if err := b.Check(); err != nil {
			t.Errorf("broker invariants: %v", err)
		}
		b.Close()
	})
	return r, gs
}

// An owner exit that arrives while its lease is being renewed is acted on
// once the renew completes, whether the renew succeeds or fails.
func TestOwnerExitDuringChangeIsNotLost(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("renew fails=%v", fail), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, gs := newGatedRig(t, Config{})
				l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 101, TTL: time.Minute}).Lease
				gs.hold()
				if fail {
					gs.failOnce()
				}
				var renewErr error
				var wg sync.WaitGroup
				wg.Go(func() { _, renewErr = r.b.Renew(context.Background(), Caller{}, l.ID, 0) })
				synctest.Wait() // the renew waits in the store
				r.watcher.exit(l.Owner)
				synctest.Wait()
				if _, err := r.b.Get(l.ID); err != nil {
					t.Fatalf("lease gone while its renew is in flight: %v", err)
				}
				gs.open()
				wg.Wait()
				if fail != (renewErr != nil) {
					t.Fatalf("renew err = %v, want failure %v", renewErr, fail)
				}
				if fail {
					time.Sleep(retryDelay) // a failed write puts off the next one
				}
				synctest.Wait()
				if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("lease of an owner that exited during a renew is still live: %v", err)
				}
				if _, ok := r.store.snapshot()[l.ID]; ok {
					t.Errorf("lease of an exited owner still stored")
				}
			})
		})
	}
}

// A launcher exit during a change starts the orphan rule when it completes.
func TestLauncherExitDuringChangeIsNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Grace: time.Second})
		gs := &gatedStore{memStore: r.store}
		r.b.Close()
		r.watcher = newFakeWatcher(h.fakeProcs)
		b, err := Open(context.Background(), Config{Pool: smallPool, Grace: time.Second, Kill: KillPolicy{SelfPID: 99, User: "1000"}},
			Deps{Store: gs, Processes: h, Prober: h, Watcher: r.watcher, Inspector: h, Holders: h, Killer: h})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		launcher := h.spawnChild(400, 0)
		h.spawnChild(401, 400)
		res, err := b.Acquire(context.Background(), AcquireRequest{Name: "svc", OwnerPID: 401, LauncherPID: 400, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		gs.hold()
		var wg sync.WaitGroup
		wg.Go(func() { b.Renew(context.Background(), Caller{}, res.Lease.ID, 0) })
		synctest.Wait()
		r.watcher.exit(launcher)
		synctest.Wait()
		if !h.isAlive(401) {
			t.Fatal("orphan stopped while its lease was mid-change")
		}
		gs.open()
		wg.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if h.isAlive(401) {
			t.Error("orphan of a launcher that exited during a change still runs")
		}
		if _, err := b.Get(res.Lease.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("orphan's lease still live: %v", err)
		}
	})
}

// A failed end at expiry leaves the lease due again, not unexpirable.
func TestFailedExpiryIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, gs := newGatedRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "web", TTL: 10 * time.Second}).Lease
		gs.failOnce()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if _, err := r.b.Get(l.ID); err != nil {
			t.Fatalf("lease gone although its delete failed: %v", err)
		}
		if err := r.b.Check(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(retryDelay)
		synctest.Wait()
		if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired lease still live a retry after a failed delete: %v", err)
		}
	})
}

// A failed renew at the moment of expiry does not disable expiry.
func TestFailedRenewAtExpiryStillExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, gs := newGatedRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "web", TTL: 10 * time.Second}).Lease
		time.Sleep(9 * time.Second)
		gs.hold()
		gs.failOnce()
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := r.b.Renew(context.Background(), Caller{}, l.ID, 0); err == nil {
				t.Error("renew succeeded against a failing store")
			}
		})
		synctest.Wait()
		time.Sleep(2 * time.Second) // expiry comes due mid-renew
		synctest.Wait()
		gs.open()
		wg.Wait()
		synctest.Wait()
		time.Sleep(retryDelay)
		synctest.Wait()
		if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lease outlived its TTL after a failed renew: %v", err)
		}
	})
}

// Renewals move the lease in the due queue; they do not add to it.
func TestDueQueueHoldsOneEntryPerLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "web", TTL: time.Minute}).Lease
		r.acquire(AcquireRequest{Name: "api", OwnerPID: 101, TTL: time.Minute})
		for range 1000 {
			if _, err := r.b.Renew(context.Background(), Caller{}, l.ID, 0); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		r.b.mu.Lock()
		n := r.b.due.len()
		r.b.mu.Unlock()
		if n != 2 {
			t.Errorf("due queue holds %d entries for 2 TTL leases after 1000 renewals", n)
		}
	})
}

// Changes to one lease wait for each other instead of failing.
func TestConcurrentChangesWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, gs := newGatedRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "web", TTL: time.Minute}).Lease
		gs.hold()
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { _, errs[i] = r.b.Renew(context.Background(), Caller{}, l.ID, 0) })
		}
		wg.Go(func() { _, errs[2] = r.b.Release(context.Background(), Caller{}, l.ID) })
		synctest.Wait()
		gs.open()
		wg.Wait()
		for i, err := range errs {
			if errors.Is(err, ErrConflict) {
				t.Errorf("change %d failed with a conflict: %v", i, err)
			}
		}
		// Whatever order they ran in, the release ended the lease; a renew
		// after it finds nothing.
		if errs[2] != nil {
			t.Errorf("release: %v", errs[2])
		}
		if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("released lease still there: %v", err)
		}
	})
}

// A waiting change gives up with its context.
func TestWaitingChangeHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, gs := newGatedRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "web", TTL: time.Minute}).Lease
		gs.hold()
		var wg sync.WaitGroup
		wg.Go(func() { r.b.Renew(context.Background(), Caller{}, l.ID, 0) })
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := r.b.Release(ctx, Caller{}, l.ID)
		mustErr(t, err, context.DeadlineExceeded)
		gs.open()
		wg.Wait()
		if _, err := r.b.Get(l.ID); err != nil {
			t.Errorf("a release that gave up ended the lease: %v", err)
		}
	})
}

// The release of an owner's last lease racing an acquire for the same
// owner leaves the owner watched.
func TestReleaseRacingAcquireKeepsOwnerWatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, gs := newGatedRig(t, Config{})
		first := r.acquire(AcquireRequest{Name: "a", OwnerPID: 101}).Lease
		gs.hold()
		var wg sync.WaitGroup
		var second AcquireResult
		wg.Go(func() { r.b.Release(context.Background(), Caller{}, first.ID) })
		wg.Go(func() {
			var err error
			second, err = r.b.Acquire(context.Background(), AcquireRequest{Name: "b", OwnerPID: 101})
			if err != nil {
				t.Error(err)
			}
		})
		synctest.Wait()
		gs.open()
		wg.Wait()
		if !r.watcher.isWatched(first.Owner) {
			t.Fatal("owner of a live lease unwatched after its other lease was released")
		}
		r.watcher.exit(first.Owner)
		synctest.Wait()
		if _, err := r.b.Get(second.Lease.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lease of an exited owner not reclaimed: %v", err)
		}
	})
}

func TestReacquireWithOtherOptions(t *testing.T) {
	tests := []struct {
		name string
		req  AcquireRequest
		want string
	}{
		{"protocol", AcquireRequest{Protocol: UDP}, "protocol tcp, asked udp"},
		{"strict port", AcquireRequest{Port: 9999, Strict: true}, "asked strictly for 9999"},
		{"ttl", AcquireRequest{TTL: time.Minute}, "ttl 0s, asked 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{})
			first := r.acquire(AcquireRequest{Name: "web", Port: 8000}).Lease
			tt.req.Name, tt.req.OwnerPID = "web", 100
			_, err := r.b.Acquire(context.Background(), tt.req)
			mustErr(t, err, ErrMismatch)
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), first.ID) {
				t.Errorf("err = %v, want it to say %q and name lease %s", err, tt.want, first.ID)
			}
		})
	}
	// A non-strict preferred port is a wish, not a mismatch.
	r := newRig(t, Config{})
	first := r.acquire(AcquireRequest{Name: "web", Port: 8000}).Lease
	again := r.acquire(AcquireRequest{Name: "web", Port: 9000})
	if !again.Existing || again.Lease.ID != first.ID {
		t.Errorf("re-acquire with another preferred port = %+v, want the same lease", again)
	}
}

// An owner the watcher cannot watch is refused, naming the field, and
// leaves nothing behind.
func TestUnwatchableOwnerIsRefused(t *testing.T) {
	r := newRig(t, Config{})
	r.watcher.refuse(101, fieldErr("pid", "101 is a thread of process 100, not a process"))
	r.watcher.refuse(102, errors.New("pidfd_open: too many open files"))
	for _, tt := range []struct {
		req   AcquireRequest
		field string
		kind  error
	}{
		{AcquireRequest{Name: "thread", OwnerPID: 101}, "owner_pid", ErrInvalid},
		{AcquireRequest{Name: "thread-launched", OwnerPID: 100, LauncherPID: 101}, "launcher_pid", ErrInvalid},
		{AcquireRequest{Name: "fdlimit", OwnerPID: 102}, "owner_pid", nil},
	} {
		_, err := r.b.Acquire(context.Background(), tt.req)
		if err == nil || !strings.HasPrefix(err.Error(), tt.field+":") || (tt.kind != nil && !errors.Is(err, tt.kind)) {
			t.Errorf("Acquire(%+v) = %v; want an error naming %s", tt.req, err, tt.field)
		}
	}
	if n := len(r.b.List("")); n != 0 {
		t.Errorf("%d leases after refusals", n)
	}
	if len(r.store.snapshot()) != 0 {
		t.Error("a refused lease was stored")
	}
}

// 100,000 unique names leave at most NameMemory remembered, and the due
// queue no larger than the leases.
func TestNameMemoryIsBounded(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	const n = 100_000
	var last Lease
	for i := range n {
		res, err := r.b.Acquire(ctx, AcquireRequest{Name: fmt.Sprintf("name-%d", i), OwnerPID: 100, TTL: time.Hour})
		if err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
		if _, err := r.b.Release(ctx, Caller{}, res.Lease.ID); err != nil {
			t.Fatal(err)
		}
		last = res.Lease
	}
	r.b.mu.Lock()
	sizes := []int{len(r.b.lastPorts), len(r.b.prevOwners), r.b.names.len(), r.b.due.len(), len(r.b.byProc), len(r.b.watched)}
	r.b.mu.Unlock()
	want := []int{NameMemory, NameMemory, NameMemory, 0, 0, 0}
	for i := range sizes {
		if sizes[i] != want[i] {
			t.Errorf("sizes (last ports, previous owners, names, due, process index, watched) = %v, want %v", sizes, want)
			break
		}
	}
	// The most recent name is still remembered; the first is not.
	if got := r.acquire(AcquireRequest{Name: last.Name}).Lease.Port; got != last.Port {
		t.Errorf("most recent name got port %d, want its last port %d", got, last.Port)
	}
	r.b.mu.Lock()
	_, first := r.b.lastPorts[NameKey{DefaultNamespace, "name-0"}]
	r.b.mu.Unlock()
	if first {
		t.Error("the first of 100,000 names is still remembered")
	}
}

// Of two stored leases on one port, restore keeps the older, whatever
// their IDs.
func TestRestoreKeepsOlderOfTwoOnOnePort(t *testing.T) {
	r := newRig(t, Config{})
	r.b.Close()
	owner, _ := r.procs.Lookup(100)
	other, _ := r.procs.Lookup(101)
	older := Lease{ID: "ffff", Name: "old", Namespace: DefaultNamespace, Port: 20005, Protocol: TCP, Owner: owner, CreatedAt: epoch}
	newer := Lease{ID: "0000", Name: "new", Namespace: DefaultNamespace, Port: 20005, Protocol: TCP, Owner: other, CreatedAt: epoch.Add(time.Minute)}
	r.store.leases[older.ID] = older
	r.store.leases[newer.ID] = newer
	r.reopen(Config{})
	got := r.b.List("")
	if len(got) != 1 || got[0].ID != older.ID {
		t.Errorf("restored %v, want only the older lease %s", got, older.ID)
	}
	if _, ok := r.store.snapshot()[newer.ID]; ok {
		t.Error("the newer lease is still stored")
	}
}

func TestServiceProtocolIsHonoured(t *testing.T) {
	r := newRig(t, Config{Services: map[string]Service{"dns": {Port: 5353, Protocol: UDP}}})
	l := r.acquire(AcquireRequest{Name: "dns"}).Lease
	if l.Protocol != UDP || l.Port != 5353 {
		t.Errorf("configured udp service got %s port %d, want udp 5353", l.Protocol, l.Port)
	}
	// An explicit protocol wins; another namespace is not the service.
	if l := r.acquire(AcquireRequest{Name: "dns", Namespace: "proj", OwnerPID: 101}).Lease; l.Protocol != TCP {
		t.Errorf("dns in another namespace got %s, want the default tcp", l.Protocol)
	}
}

func TestNegativeGraceIsRefused(t *testing.T) {
	_, err := Open(context.Background(), Config{Pool: smallPool, Grace: -time.Second},
		Deps{Store: newMemStore(), Processes: newFakeProcs(), Prober: newFakeProber()})
	mustErr(t, err, ErrInvalid)
	if !strings.Contains(err.Error(), "reclaim.grace") {
		t.Errorf("err = %v, want it to name reclaim.grace", err)
	}
}

// When the preferred port is busy, a name gets back the port it had last
// time rather than a new one on every run.
func TestStickyFallback(t *testing.T) {
	r := newRig(t, Config{})
	r.prober.setBusy(8000, true)
	// Another name takes a port in between each run, so only the name's
	// memory can bring its port back.
	var ports []uint16
	for i := range 3 {
		res := r.acquire(AcquireRequest{Name: "backend", Port: 8000})
		if res.FallbackReason == "" {
			t.Fatalf("run %d: no fallback reason for a busy preferred port", i)
		}
		ports = append(ports, res.Lease.Port)
		if _, err := r.b.Release(context.Background(), Caller{}, res.Lease.ID); err != nil {
			t.Fatal(err)
		}
		r.acquire(AcquireRequest{Name: fmt.Sprintf("other-%d", i), OwnerPID: 101})
		if i == 1 {
			r.reopen(Config{})
		}
	}
	if ports[0] != ports[1] || ports[1] != ports[2] {
		t.Errorf("successive runs with 8000 busy got ports %v, want the same port each time", ports)
	}
	// Once the preferred port is free again, it wins.
	r.prober.setBusy(8000, false)
	if got := r.acquire(AcquireRequest{Name: "backend", Port: 8000}).Lease.Port; got != 8000 {
		t.Errorf("got %d with 8000 free, want 8000", got)
	}
	// When the last port is busy too, a fresh pool port.
	r2 := newRig(t, Config{})
	r2.prober.setBusy(8000, true)
	first := r2.acquire(AcquireRequest{Name: "backend", Port: 8000}).Lease
	r2.b.Release(context.Background(), Caller{}, first.ID)
	r2.prober.setBusy(first.Port, true)
	if got := r2.acquire(AcquireRequest{Name: "backend", Port: 8000}).Lease.Port; got == first.Port || got == 8000 {
		t.Errorf("got port %d, want a pool port other than busy %d", got, first.Port)
	}
}

// A service that daemonizes (its first process exits, a process it started
// keeps the port) keeps its lease, tied to its launcher: killing the
// launcher stops it. A process that predates the owner, or another user's,
// never inherits a lease.
func TestLeaseFollowsDaemonizedService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Grace: time.Second})
		launcher := h.spawnChild(400, 0)
		owner := h.spawnChild(401, 400)
		l := r.acquire(AcquireRequest{Name: "svc", OwnerPID: 401, LauncherPID: 400}).Lease
		h.spawnChild(350, 0) // older: shares the port, but cannot be the service's
		daemon := h.spawnChild(402, 0)
		h.mu.Lock()
		h.holds[l.Port] = []int{350, 402}
		h.mu.Unlock()
		sub, err := r.b.Watch("", false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()

		r.watcher.exit(owner)
		synctest.Wait()
		select {
		case ev := <-sub.Events():
			if ev.Type != EventTransferred || ev.Lease.ID != l.ID || !ev.Lease.Owner.Same(daemon) {
				t.Errorf("event %v of %s owned by %v; want transferred to the daemon %v", ev.Type, ev.Lease.ID, ev.Lease.Owner, daemon)
			}
		default:
			t.Error("no event when the lease moved to the daemonized service")
		}
		got, err := r.b.Get(l.ID)
		if err != nil {
			t.Fatalf("lease of a daemonized service reclaimed: %v", err)
		}
		if !got.Owner.Same(daemon) || !got.Launcher.Same(launcher) {
			t.Fatalf("lease owner %v launcher %v; want the daemon %v and the launcher %v", got.Owner, got.Launcher, daemon, launcher)
		}
		if stored := r.store.snapshot()[l.ID]; !stored.Owner.Same(daemon) {
			t.Errorf("stored owner %v, want %v", stored.Owner, daemon)
		}
		if !r.watcher.isWatched(daemon) || r.watcher.isWatched(owner) {
			t.Errorf("watched: daemon %v, old owner %v; want the daemon only", r.watcher.isWatched(daemon), r.watcher.isWatched(owner))
		}

		r.watcher.exit(launcher)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if h.isAlive(402) {
			t.Error("daemonized service still runs after its launcher died")
		}
		if !h.isAlive(350) {
			t.Error("the older process sharing the port was stopped")
		}
		if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lease still live: %v", err)
		}
	})
}

func TestLeaseDoesNotFollowUnrelatedHolder(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(h *fakeHost) int
	}{
		{"older process", func(h *fakeHost) int { h.spawnChild(350, 0); return 350 }},
		{"another user", func(h *fakeHost) int {
			p := h.spawnChild(402, 0)
			h.mu.Lock()
			p.User = "2000"
			h.procs[402] = p
			h.mu.Unlock()
			return 402
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, h := newHostRig(t, Config{})
				owner := h.spawnChild(401, 0)
				l := r.acquire(AcquireRequest{Name: "svc", OwnerPID: 401}).Lease
				pid := tt.setup(h)
				h.mu.Lock()
				h.holds[l.Port] = []int{pid}
				h.mu.Unlock()
				r.watcher.exit(owner)
				synctest.Wait()
				if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("lease passed to an unrelated holder: %v", err)
				}
			})
		})
	}
}

// A service that daemonized while the daemon was down keeps its lease at
// restart.
func TestRestoreFollowsDaemonizedService(t *testing.T) {
	procs := newFakeProcs()
	h := newFakeHost(procs)
	store := newMemStore()
	cfg := Config{Pool: smallPool, Kill: KillPolicy{SelfPID: 99, User: "1000"}}
	open := func() (*Broker, *fakeWatcher) {
		w := newFakeWatcher(procs)
		b, err := Open(context.Background(), cfg, Deps{Store: store, Processes: h, Prober: h, Watcher: w, Inspector: h, Holders: h, Killer: h})
		if err != nil {
			t.Fatal(err)
		}
		return b, w
	}
	b, _ := open()
	h.spawnChild(400, 0)
	h.spawnChild(401, 400)
	res, err := b.Acquire(context.Background(), AcquireRequest{Name: "svc", OwnerPID: 401, LauncherPID: 400})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	daemon := h.spawnChild(402, 0)
	h.mu.Lock()
	h.holds[res.Lease.Port] = []int{402}
	h.mu.Unlock()
	h.kill(401)

	b, w := open()
	defer b.Close()
	got, err := b.Get(res.Lease.ID)
	if err != nil {
		t.Fatalf("lease of a service that daemonized while the daemon was down: %v", err)
	}
	if !got.Owner.Same(daemon) || got.Launcher.PID != 400 || !w.isWatched(daemon) {
		t.Errorf("restored lease owner %v launcher %v (daemon watched %v); want %v, 400, watched", got.Owner, got.Launcher, w.isWatched(daemon), daemon)
	}
	if stored := store.snapshot()[res.Lease.ID]; !stored.Owner.Same(daemon) {
		t.Errorf("stored owner %v, want %v", stored.Owner, daemon)
	}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
}
