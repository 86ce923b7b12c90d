package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// widePool holds up to 20000 leases.
var widePool = PoolConfig{Range: PortRange{First: 10000, Last: 29999}, Ephemeral: PortRange{First: 32768, Last: 60999}}

// viewOf applies events to a watcher's view of the table, failing on an
// acquired event for a lease already in view or an end for one not in it.
type viewOf struct {
	t      *testing.T
	leases map[string]Lease
}

func (v *viewOf) apply(ev Event) {
	v.t.Helper()
	switch ev.Type {
	case EventAcquired:
		if _, dup := v.leases[ev.Lease.ID]; dup {
			v.t.Fatalf("acquired twice: %s", ev.Lease.ID)
		}
		v.leases[ev.Lease.ID] = ev.Lease
	case EventRenewed:
		if _, ok := v.leases[ev.Lease.ID]; !ok {
			v.t.Fatalf("renew of a lease not in view: %s", ev.Lease.ID)
		}
		v.leases[ev.Lease.ID] = ev.Lease
	default:
		if _, ok := v.leases[ev.Lease.ID]; !ok {
			v.t.Fatalf("%v of a lease not in view: %s", ev.Type, ev.Lease.ID)
		}
		delete(v.leases, ev.Lease.ID)
	}
}

// TestWatchExistingNoGapNoDuplicate: a watcher with include_existing that
// reads while leases come, go and renew ends with a view equal to the
// table, having seen each lease appear once and end at most once.
func TestWatchExistingNoGapNoDuplicate(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 10))
			r := newRig(t, Config{Pool: widePool, Limits: Limits{LeasesPerUser: 100000, Leases: 100000}})
			ctx := context.Background()
			var ids []string
			acquire := func(i int) {
				ns := []string{"default", "a", "z"}[rng.IntN(3)]
				l := r.acquire(AcquireRequest{Namespace: ns, Name: fmt.Sprintf("svc%05d", i), TTL: time.Hour})
				ids = append(ids, l.Lease.ID)
			}
			// More existing leases than a watcher buffers, so the feeder
			// blocks mid-table while the first changes happen.
			const existing = 2 * subBuffer
			for i := range existing {
				acquire(i)
			}
			ns := []string{"", "a"}[seed%2]
			sub, err := r.b.Watch(ns, true)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			v := &viewOf{t: t, leases: map[string]Lease{}}
			next := existing
			// At most 700 changes, each queueing at most two events (an
			// end of a lease not yet paged is sent as acquired, then the
			// end), stay within the watcher's buffer however the reader
			// and the feeder are scheduled: only a slow reader overflows.
			for step := range 700 {
				switch op := rng.IntN(10); {
				case op < 3:
					acquire(next)
					next++
				case op < 6 && len(ids) > 0:
					i := rng.IntN(len(ids))
					if _, err := r.b.Release(ctx, Caller{}, ids[i]); err != nil {
						t.Fatal(err)
					}
					ids = append(ids[:i], ids[i+1:]...)
				case op < 8 && len(ids) > 0:
					if _, err := r.b.Renew(ctx, Caller{}, ids[rng.IntN(len(ids))], time.Hour); err != nil {
						t.Fatal(err)
					}
				case step < 300:
					// no reads yet
				default:
					for range rng.IntN(200) {
						select {
						case ev, ok := <-sub.Events():
							if !ok {
								t.Fatalf("stream ended: %v", sub.Err())
							}
							v.apply(ev)
						default:
							runtime.Gosched() // let the feeder run
						}
					}
				}
			}
			// Drain: read until the feeder is done, then up to a marker
			// lease acquired after that.
			for feeding := true; feeding; {
				r.b.mu.Lock()
				feeding = sub.feeding
				r.b.mu.Unlock()
				select {
				case ev, ok := <-sub.Events():
					if !ok {
						t.Fatalf("stream ended: %v", sub.Err())
					}
					v.apply(ev)
				default:
					runtime.Gosched()
				}
			}
			markerNS := ns
			if markerNS == "" {
				markerNS = "default"
			}
			marker := r.acquire(AcquireRequest{Namespace: markerNS, Name: "~marker"}).Lease
			for {
				ev, ok := <-sub.Events()
				if !ok {
					t.Fatalf("stream ended: %v", sub.Err())
				}
				v.apply(ev)
				if ev.Lease.ID == marker.ID {
					break
				}
			}
			want := r.b.List(ns)
			if len(want) != len(v.leases) {
				t.Fatalf("view has %d leases, the table %d", len(v.leases), len(want))
			}
			for _, l := range want {
				got, ok := v.leases[l.ID]
				if !ok || got != l {
					t.Fatalf("view of %s = %+v (present %v), table %+v", l.ID, got, ok, l)
				}
			}
		})
	}
}

// TestWatcherFloodBounded: 300 watchers with include_existing over a
// table of 10000 leases, each reading one event and then no more, as a
// gRPC handler blocked in Send does. The broker holds at most a buffer
// and a page per watcher, admits no more than limits.watchers, and an
// overflowed watcher keeps its slot until it is closed.
func TestWatcherFloodBounded(t *testing.T) {
	const leases, watchers, limit = 6000, 300, 256
	r := newRig(t, Config{Pool: widePool, Limits: Limits{LeasesPerUser: 100000, Leases: 100000, Watchers: limit}})
	for i := range leases {
		r.acquire(AcquireRequest{Namespace: fmt.Sprintf("ns%03d", i%100), Name: fmt.Sprintf("%0128d", i), OwnerPID: 100 + i%4})
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var subs []*Subscription
	refused := 0
	for range watchers {
		sub, err := r.b.Watch("", true)
		if errors.Is(err, ErrWatcherLimit) {
			refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		<-sub.Events()
		subs = append(subs, sub)
	}
	if len(subs) != limit || refused != watchers-limit {
		t.Fatalf("%d watchers admitted, %d refused; want %d and %d", len(subs), refused, limit, watchers-limit)
	}
	// Churn until every watcher has overflowed.
	ctx := context.Background()
	for i := 0; ; i++ {
		l := r.acquire(AcquireRequest{Name: fmt.Sprintf("churn%d", i%50), OwnerPID: 101})
		if _, err := r.b.Release(ctx, Caller{}, l.Lease.ID); err != nil {
			t.Fatal(err)
		}
		overflowed := 0
		for _, s := range subs {
			if errors.Is(s.Err(), ErrOverflow) {
				overflowed++
			}
		}
		if overflowed == len(subs) {
			break
		}
		if i > 10*subBuffer {
			t.Fatalf("only %d of %d watchers overflowed", overflowed, len(subs))
		}
	}
	held := 0
	r.b.mu.Lock()
	for s := range r.b.subs {
		held += len(s.ch) + len(s.pending)
	}
	r.b.mu.Unlock()
	if perSub := 2 * subBuffer; held > limit*perSub {
		t.Errorf("%d events held by %d watchers, more than %d each", held, limit, perSub)
	}
	grew := int64(heap()) - int64(before)
	// Each watcher: its channel and pending list (subBuffer each) and a
	// page in its feeder, plus slack for the runtime. A copy of the table per watcher
	// would be leases*limit events, over five times more.
	ev := int64(unsafe.Sizeof(Event{}))
	// The pending list's array may outgrow subBuffer by append's growth.
	bound := int64(limit)*(5*subBuffer/2+existingPage)*ev + 64<<20
	t.Logf("heap grew %d MiB for %d watchers (bound %d MiB; a table copy each would be %d MiB)",
		grew>>20, limit, bound>>20, int64(leases)*limit*ev>>20)
	if grew > bound {
		t.Errorf("heap grew %d bytes, bound %d", grew, bound)
	}
	if _, err := r.b.Watch("", false); !errors.Is(err, ErrWatcherLimit) {
		t.Errorf("a watcher past the limit while the overflowed ones are open: %v", err)
	}
	subs[0].Close()
	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatalf("no slot after one watcher closed: %v", err)
	}
	sub.Close()
	for _, s := range subs[1:] {
		s.Close()
	}
}
