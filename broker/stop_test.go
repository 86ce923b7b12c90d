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

// timedKiller records when each Terminate and Kill was asked, so a test
// can check that no forced stop came before its grace.
type timedKiller struct {
	h   *fakeHost
	mu  sync.Mutex
	log []signalAt
}

type signalAt struct {
	sig string
	pid int
	at  time.Time
}

func (k *timedKiller) record(sig string, p Process) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = append(k.log, signalAt{sig: sig, pid: p.PID, at: time.Now()})
}

func (k *timedKiller) Terminate(p Process) error {
	k.record("TERM", p)
	return k.h.Terminate(p)
}

func (k *timedKiller) Kill(p Process) error {
	k.record("KILL", p)
	return k.h.Kill(p)
}

func (k *timedKiller) signals() []signalAt {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]signalAt(nil), k.log...)
}

// checkGraceKept fails unless every Kill of a process came at least grace
// after the latest Terminate of it that preceded the Kill, and each Kill
// was preceded by a Terminate.
func checkGraceKept(t *testing.T, log []signalAt, grace time.Duration) {
	t.Helper()
	lastTerm := map[int]time.Time{}
	for _, s := range log {
		switch s.sig {
		case "TERM":
			lastTerm[s.pid] = s.at
		case "KILL":
			term, ok := lastTerm[s.pid]
			if !ok {
				t.Errorf("pid %d forced with no graceful request first: %v", s.pid, log)
				continue
			}
			if waited := s.at.Sub(term); waited < grace {
				t.Errorf("pid %d forced %v after its graceful request, before the %v grace", s.pid, waited, grace)
			}
		}
	}
}

func countSig(log []signalAt, sig string, pid int) int {
	n := 0
	for _, s := range log {
		if s.sig == sig && s.pid == pid {
			n++
		}
	}
	return n
}

// stopRig is a broker over a fakeHost whose killer records times, and
// which can be closed and opened again on the same store and host.
type stopRig struct {
	t       *testing.T
	cfg     Config
	store   *memStore
	h       *fakeHost
	killer  *timedKiller
	watcher *fakeWatcher
	b       *Broker
}

func newStopRig(t *testing.T, cfg Config) *stopRig {
	t.Helper()
	h := newFakeHost(newFakeProcs(100, 101, 102, 103))
	if cfg.Pool.Range == (PortRange{}) {
		cfg.Pool = smallPool
	}
	cfg.Kill = KillPolicy{SelfPID: 99, User: "1000", Protected: []string{"sshd"}}
	r := &stopRig{t: t, cfg: cfg, store: newMemStore(), h: h, killer: &timedKiller{h: h}}
	r.open()
	return r
}

func (r *stopRig) open() {
	r.t.Helper()
	r.watcher = newFakeWatcher(r.h.fakeProcs)
	b, err := Open(context.Background(), r.cfg, Deps{Store: r.store, Processes: r.h, Prober: r.h, Watcher: r.watcher,
		Inspector: r.h, Holders: r.h, Killer: r.killer})
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
	r.b = b
	r.t.Cleanup(func() {
		if err := b.Check(); err != nil {
			r.t.Errorf("broker invariants: %v", err)
		}
		b.Close()
	})
}

func (r *stopRig) acquire(req AcquireRequest) Lease {
	r.t.Helper()
	res, err := r.b.Acquire(context.Background(), req)
	if err != nil {
		r.t.Fatalf("Acquire(%+v): %v", req, err)
	}
	return res.Lease
}

// TestReclaimCancelledNeverForcesEarly: a requester that leaves, by
// deadline or by cancel, does not cut the grace short; the stop still
// completes, force included, once the grace has passed.
func TestReclaimCancelledNeverForcesEarly(t *testing.T) {
	const grace = 10 * time.Second
	for _, leave := range []string{"deadline", "cancel"} {
		t.Run(leave, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newStopRig(t, Config{Grace: time.Hour})
				r.h.spawnChild(200, 0)
				r.h.spawnChild(201, 200)
				r.h.stubborn[200] = true
				r.h.stubborn[201] = true
				r.h.holds[8000] = []int{200}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if leave == "cancel" {
					go func() {
						time.Sleep(500 * time.Millisecond)
						cancel()
					}()
				}
				_, err := r.b.ReclaimPort(ctx, ReclaimRequest{Caller: stopAsker, Port: 8000, Kill: true, Grace: grace})
				want := context.DeadlineExceeded
				if leave == "cancel" {
					want = context.Canceled
				}
				if !errors.Is(err, want) {
					t.Fatalf("ReclaimPort = %v, want %v", err, want)
				}
				if n := countSig(r.killer.signals(), "KILL", 200); n != 0 {
					t.Fatalf("forced at once when the requester left: %v", r.killer.signals())
				}
				time.Sleep(grace + forcedWait)
				synctest.Wait()
				log := r.killer.signals()
				checkGraceKept(t, log, grace)
				if countSig(log, "KILL", 200) != 1 || countSig(log, "KILL", 201) != 1 {
					t.Errorf("stop not completed after the requester left: %v", log)
				}
				if r.h.isAlive(200) || r.h.isAlive(201) {
					t.Error("tree still running after its grace")
				}
			})
		})
	}
}

// TestAcquireReclaimCancelledNeverForcesEarly covers both stops of acquire
// with reclaim: the orphan of the same name, and the name's previous owner
// still holding the port.
func TestAcquireReclaimCancelledNeverForcesEarly(t *testing.T) {
	const grace = 10 * time.Second
	t.Run("orphan", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newStopRig(t, Config{Grace: grace, Orphans: OrphanKeep})
			r.h.spawnChild(400, 0)
			r.h.spawnChild(401, 400)
			r.h.stubborn[401] = true
			old := r.acquire(AcquireRequest{Name: "backend", Port: 8000, OwnerPID: 401, LauncherPID: 400})
			r.h.holds[8000] = []int{401}
			r.h.kill(400)
			sub, err := r.b.Watch("", false)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()

			r.h.spawnChild(500, 0)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err = r.b.Acquire(ctx, AcquireRequest{Caller: stopAsker, Name: "backend", Port: 8000, OwnerPID: 500, Reclaim: true})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Acquire = %v, want the deadline", err)
			}
			if countSig(r.killer.signals(), "KILL", 401) != 0 {
				t.Fatalf("forced when the requester left: %v", r.killer.signals())
			}
			time.Sleep(grace + forcedWait + 2*time.Second)
			synctest.Wait()
			checkGraceKept(t, r.killer.signals(), grace)
			if r.h.isAlive(401) {
				t.Fatal("orphan still running after its grace")
			}
			ev := <-sub.Events()
			if ev.Type != EventReclaimed || ev.Reason != ReasonLauncherExited || ev.Lease.ID != old.ID {
				t.Errorf("event = %v/%v for %s, want the orphan's lease reclaimed", ev.Type, ev.Reason, ev.Lease.ID)
			}
			if l := r.acquire(AcquireRequest{Caller: stopAsker, Name: "backend", Port: 8000, OwnerPID: 500, Reclaim: true}); l.Port != 8000 {
				t.Errorf("after the stop, got port %d, want 8000", l.Port)
			}
		})
	})
	t.Run("previous owner", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newStopRig(t, Config{Grace: grace})
			l := r.acquire(AcquireRequest{Name: "backend", Port: 8000, OwnerPID: 102})
			if _, err := r.b.Release(context.Background(), Caller{}, l.ID); err != nil {
				t.Fatal(err)
			}
			r.h.stubborn[102] = true
			r.h.holds[8000] = []int{102}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				time.Sleep(time.Second)
				cancel()
			}()
			_, err := r.b.Acquire(ctx, AcquireRequest{Caller: stopAsker, Name: "backend", Port: 8000, OwnerPID: 103, Reclaim: true})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Acquire = %v, want canceled", err)
			}
			time.Sleep(grace + forcedWait)
			synctest.Wait()
			log := r.killer.signals()
			checkGraceKept(t, log, grace)
			if countSig(log, "KILL", 102) != 1 || r.h.isAlive(102) {
				t.Errorf("previous owner not stopped after its grace: %v", log)
			}
		})
	})
}

// TestCloseDuringOrphanGraceThenReopen: a broker that closes during an
// orphan's grace forces nothing and keeps the lease; the next broker on
// the same store applies the orphan rule again, grace and all.
func TestCloseDuringOrphanGraceThenReopen(t *testing.T) {
	const grace = 10 * time.Second
	synctest.Test(t, func(t *testing.T) {
		r := newStopRig(t, Config{Grace: grace})
		launcher := r.h.spawnChild(400, 0)
		r.h.spawnChild(401, 400)
		r.h.spawnChild(402, 401)
		r.h.stubborn[401] = true
		r.h.stubborn[402] = true
		l := r.acquire(AcquireRequest{Name: "backend", OwnerPID: 401, LauncherPID: 400})
		r.h.holds[l.Port] = []int{401}
		r.h.kill(400)
		r.watcher.exit(launcher)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if countSig(r.killer.signals(), "TERM", 401) != 1 {
			t.Fatalf("orphan rule did not begin: %v", r.killer.signals())
		}
		if err := r.b.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := countSig(r.killer.signals(), "KILL", 401) + countSig(r.killer.signals(), "KILL", 402); n != 0 {
			t.Fatalf("forced during shutdown: %v", r.killer.signals())
		}
		if !r.h.isAlive(401) {
			t.Fatal("stubborn orphan gone without a forced stop")
		}
		if _, ok := r.store.snapshot()[l.ID]; !ok {
			t.Fatal("unfinished orphan's lease dropped from the store")
		}

		reopened := time.Now()
		r.open()
		sub, err := r.b.Watch("", false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ev := <-sub.Events()
		if ev.Type != EventReclaimed || ev.Reason != ReasonLauncherExited || ev.Lease.ID != l.ID {
			t.Fatalf("event = %v/%v for %s, want the orphan's lease reclaimed", ev.Type, ev.Reason, ev.Lease.ID)
		}
		log := r.killer.signals()
		checkGraceKept(t, log, grace)
		if r.h.isAlive(401) || r.h.isAlive(402) {
			t.Error("orphan tree still running after the restart's grace")
		}
		for _, s := range log {
			if s.sig == "KILL" && s.at.Sub(reopened) < grace {
				t.Errorf("pid %d forced %v after the restart, before the grace", s.pid, s.at.Sub(reopened))
			}
		}
		if _, ok := r.store.snapshot()[l.ID]; ok {
			t.Error("orphan's lease still stored after the stop")
		}
	})
}

// TestReclaimInterruptedByClose: a requester waiting on a stop when the
// broker closes hears that it was left unfinished; nothing is forced.
func TestReclaimInterruptedByClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newStopRig(t, Config{})
		r.h.spawnChild(200, 0)
		r.h.stubborn[200] = true
		r.h.holds[8000] = []int{200}
		go func() {
			time.Sleep(time.Second)
			r.b.Close()
		}()
		_, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: stopAsker, Port: 8000, Kill: true, Grace: 5 * time.Second})
		if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "unfinished") {
			t.Fatalf("ReclaimPort = %v, want unfinished/closed", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := countSig(r.killer.signals(), "KILL", 200); n != 0 || !r.h.isAlive(200) {
			t.Errorf("forced during shutdown: %v", r.killer.signals())
		}
	})
}

func TestReclaimGraceLimit(t *testing.T) {
	r := newStopRig(t, Config{})
	for _, g := range []time.Duration{-time.Second, MaxCallGrace + time.Nanosecond, time.Duration(1<<63 - 1)} {
		_, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: stopAsker, Port: 8000, Kill: true, Grace: g})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "grace" || !strings.Contains(fe.Rule, fmt.Sprint(MaxCallGrace)) {
			t.Errorf("grace %v: err = %v, want a field error on grace naming %v", g, err, MaxCallGrace)
		}
	}
	if len(r.killer.signals()) != 0 {
		t.Errorf("refused reclaims signalled: %v", r.killer.signals())
	}
}

// stopAsker is a caller the transport named (a PID outside every stopped
// tree), as a kill request needs.
var stopAsker = Caller{PID: 50}
