package broker

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAcquirePreferredPort(t *testing.T) {
	r := newRig(t, Config{})
	res := r.acquire(AcquireRequest{Name: "backend", Port: 8000})
	if res.Lease.Port != 8000 || res.FallbackReason != "" {
		t.Fatalf("got port %d, fallback %q; want 8000 and none", res.Lease.Port, res.FallbackReason)
	}
	l := res.Lease
	if l.Namespace != DefaultNamespace || l.Protocol != TCP || l.Owner.PID != 100 || l.Owner.Name != "proc100" {
		t.Errorf("lease = %+v; want default namespace, tcp, owner proc100", l)
	}
	if !l.Owner.StartTime.Equal(epoch.Add(100 * time.Second)) {
		t.Errorf("owner start time = %v, want the process's", l.Owner.StartTime)
	}
	if _, ok := r.store.snapshot()[l.ID]; !ok {
		t.Errorf("lease %s not in the store", l.ID)
	}
}

func TestAcquireFallback(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(r *rig)
		req        AcquireRequest
		wantErr    error
		wantReason string
	}{
		{
			name:       "preferred does not bind",
			setup:      func(r *rig) { r.prober.setBusy(8000, true) },
			req:        AcquireRequest{Name: "web", Port: 8000},
			wantReason: "address already in use",
		},
		{
			name:    "preferred does not bind, strict",
			setup:   func(r *rig) { r.prober.setBusy(8000, true) },
			req:     AcquireRequest{Name: "web", Port: 8000, Strict: true},
			wantErr: ErrPortHeld,
		},
		{
			name:       "preferred leased by another name",
			setup:      func(r *rig) { r.acquire(AcquireRequest{Name: "other", Port: 8000, OwnerPID: 101}) },
			req:        AcquireRequest{Name: "web", Port: 8000},
			wantReason: "leased to default/other by pid 101 (proc101)",
		},
		{
			name:    "preferred leased by another name, strict",
			setup:   func(r *rig) { r.acquire(AcquireRequest{Name: "other", Port: 8000, OwnerPID: 101}) },
			req:     AcquireRequest{Name: "web", Port: 8000, Strict: true},
			wantErr: ErrPortHeld,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{})
			tt.setup(r)
			before := r.b.List("")
			tt.req.OwnerPID = 100
			res, err := r.b.Acquire(context.Background(), tt.req)
			if tt.wantErr != nil {
				mustErr(t, err, tt.wantErr)
				if diff := cmp.Diff(before, r.b.List("")); diff != "" {
					t.Errorf("refused acquire changed the leases (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Lease.Port == 8000 || !r.b.pool.inPool(res.Lease.Port) {
				t.Errorf("port = %d, want a pool port", res.Lease.Port)
			}
			if !strings.Contains(res.FallbackReason, tt.wantReason) {
				t.Errorf("fallback reason = %q, want it to contain %q", res.FallbackReason, tt.wantReason)
			}
		})
	}
}

func TestStrictErrorNamesHolder(t *testing.T) {
	r := newRig(t, Config{})
	r.acquire(AcquireRequest{Name: "other", Port: 8000, OwnerPID: 101})
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "web", Port: 8000, Strict: true, OwnerPID: 100})
	var held *PortHeldError
	if !errors.As(err, &held) {
		t.Fatalf("err = %v, want a PortHeldError", err)
	}
	if held.Holder.PID != 101 || !strings.Contains(err.Error(), "pid 101 (proc101)") {
		t.Errorf("err = %v, want it to name pid 101 (proc101)", err)
	}
}

func TestStickyName(t *testing.T) {
	r := newRig(t, Config{})
	first := r.acquire(AcquireRequest{Name: "api"}).Lease
	if _, err := r.b.Release(context.Background(), Caller{}, first.ID); err != nil {
		t.Fatal(err)
	}
	// Move the allocator on, so only the name's memory can bring it back.
	for _, n := range []string{"a", "b", "c"} {
		r.acquire(AcquireRequest{Name: n, OwnerPID: 101})
	}
	r.reopen(Config{})
	again := r.acquire(AcquireRequest{Name: "api"}).Lease
	if again.Port != first.Port {
		t.Errorf("api got port %d after release and restart, want its last port %d", again.Port, first.Port)
	}

	// When the remembered port is taken, the name falls back without fuss.
	if _, err := r.b.Release(context.Background(), Caller{}, again.ID); err != nil {
		t.Fatal(err)
	}
	r.prober.setBusy(first.Port, true)
	third := r.acquire(AcquireRequest{Name: "api", Strict: true})
	if third.Lease.Port == first.Port {
		t.Errorf("api got busy port %d", first.Port)
	}
}

func TestServicesFromConfig(t *testing.T) {
	cfg := Config{Services: map[string]Service{"backend": {Port: 8000}, "frontend": {Port: 3000}}}
	r := newRig(t, cfg)
	if got := r.acquire(AcquireRequest{Name: "backend"}).Lease.Port; got != 8000 {
		t.Errorf("backend got %d, want 8000 from config", got)
	}
	if got := r.acquire(AcquireRequest{Name: "frontend", OwnerPID: 101}).Lease.Port; got != 3000 {
		t.Errorf("frontend got %d, want 3000 from config", got)
	}
	if got := r.acquire(AcquireRequest{Name: "backend", Namespace: "other", OwnerPID: 102}).Lease.Port; got == 8000 {
		t.Errorf("backend in another namespace got the default namespace's configured port")
	}
	// A configured port counts as asked for, so strict refuses when it is held.
	r.prober.setBusy(8081, true)
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "auth", Port: 8081, Strict: true, OwnerPID: 103})
	mustErr(t, err, ErrPortHeld)
}

func TestNamespacesAndNames(t *testing.T) {
	r := newRig(t, Config{})
	a := r.acquire(AcquireRequest{Name: "web", Namespace: "proj-a"}).Lease
	b := r.acquire(AcquireRequest{Name: "web", Namespace: "proj-b", OwnerPID: 101}).Lease
	if a.Port == b.Port {
		t.Fatalf("two leases share port %d", a.Port)
	}
	if got := len(r.b.List("proj-a")); got != 1 {
		t.Errorf("List(proj-a) has %d leases, want 1", got)
	}
	if got := len(r.b.List("")); got != 2 {
		t.Errorf("List() has %d leases, want 2", got)
	}
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "web", Namespace: "proj-a", OwnerPID: 102})
	mustErr(t, err, ErrNameTaken)
	if !strings.Contains(err.Error(), "pid 100") {
		t.Errorf("err = %v, want it to name the holder pid 100", err)
	}
}

func TestReacquireSameOwnerIsIdempotent(t *testing.T) {
	r := newRig(t, Config{})
	first := r.acquire(AcquireRequest{Name: "web"})
	writes := r.store.writes
	second := r.acquire(AcquireRequest{Name: "web"})
	if !second.Existing || second.Lease.ID != first.Lease.ID || second.Lease.Port != first.Lease.Port {
		t.Errorf("second acquire = %+v, want the first lease back marked existing", second)
	}
	if r.store.writes != writes {
		t.Errorf("re-acquire wrote to the store")
	}
}

func TestNameOfDeadOwnerIsReclaimed(t *testing.T) {
	r := newRig(t, Config{})
	old := r.acquire(AcquireRequest{Name: "web", OwnerPID: 101}).Lease
	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r.procs.reuse(101) // 101 died; its PID now belongs to another process.
	res := r.acquire(AcquireRequest{Name: "web", OwnerPID: 102})
	if res.Lease.ID == old.ID || res.Lease.Owner.PID != 102 {
		t.Fatalf("got %+v, want a new lease for pid 102", res.Lease)
	}
	ev := <-sub.Events()
	if ev.Type != EventReclaimed || ev.Reason != ReasonOwnerExited || ev.Lease.ID != old.ID {
		t.Errorf("first event = %v %v %s, want reclaimed/owner exited for %s", ev.Type, ev.Reason, ev.Lease.ID, old.ID)
	}
}

func TestExhaustion(t *testing.T) {
	r := newRig(t, Config{Pool: PoolConfig{Range: PortRange{First: 20000, Last: 20002}}})
	for i, name := range []string{"a", "b", "c"} {
		r.acquire(AcquireRequest{Name: name, OwnerPID: 100 + i})
	}
	before := r.store.snapshot()
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "d", OwnerPID: 103})
	mustErr(t, err, ErrExhausted)
	if diff := cmp.Diff(before, r.store.snapshot()); diff != "" {
		t.Errorf("refusal changed the store:\n%s", diff)
	}
	if s := r.b.Status(); s.PoolFree != 0 || s.PoolSize != 3 || s.Leases != 3 {
		t.Errorf("status = %+v, want size 3, free 0, 3 leases", s)
	}
}

func TestBusyCandidateIsRestedNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{Pool: PoolConfig{Range: PortRange{First: 20000, Last: 20001}}})
		r.prober.setBusy(20000, true)
		got := r.acquire(AcquireRequest{Name: "a"}).Lease.Port
		if got != 20001 {
			t.Fatalf("got %d, want 20001 (20000 is busy)", got)
		}
		// The pool has one port left but it failed to bind: refuse without
		// probing it again.
		_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "b", OwnerPID: 101})
		mustErr(t, err, ErrExhausted)
		if n := r.prober.count(20000); n != 1 {
			t.Errorf("busy port probed %d times, want 1", n)
		}
		// After its rest, the port is tried again.
		r.prober.setBusy(20000, false)
		time.Sleep(busyRest)
		if got := r.acquire(AcquireRequest{Name: "b", OwnerPID: 101}).Lease.Port; got != 20000 {
			t.Errorf("after the rest got %d, want 20000", got)
		}
	})
}

func TestRelease(t *testing.T) {
	r := newRig(t, Config{})
	l := r.acquire(AcquireRequest{Name: "web"}).Lease
	got, err := r.b.Release(context.Background(), Caller{}, l.ID)
	if err != nil || got.ID != l.ID {
		t.Fatalf("Release = %v, %v", got.ID, err)
	}
	if len(r.b.List("")) != 0 || len(r.store.snapshot()) != 0 {
		t.Errorf("lease still listed or stored after release")
	}
	if r.b.Status().PoolFree != 100 {
		t.Errorf("pool free = %d, want 100 after release", r.b.Status().PoolFree)
	}
	_, err = r.b.Release(context.Background(), Caller{}, l.ID)
	mustErr(t, err, ErrNotFound)
}

func TestStoreFailureLosesNothing(t *testing.T) {
	r := newRig(t, Config{})
	kept := r.acquire(AcquireRequest{Name: "kept"}).Lease
	boom := errors.New("disk full")

	r.store.failNext = boom
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "web", OwnerPID: 101})
	mustErr(t, err, boom)
	if got := r.b.List(""); len(got) != 1 || got[0].ID != kept.ID {
		t.Errorf("after failed acquire, leases = %v, want only %s", got, kept.ID)
	}
	if s := r.b.Status(); s.PoolFree != 99 {
		t.Errorf("pool free = %d, want 99: the failed acquire must give its port back", s.PoolFree)
	}

	r.store.failNext = boom
	_, err = r.b.Release(context.Background(), Caller{}, kept.ID)
	mustErr(t, err, boom)
	if _, err := r.b.Get(kept.ID); err != nil {
		t.Errorf("lease gone after failed release: %v", err)
	}
	if _, err := r.b.Release(context.Background(), Caller{}, kept.ID); err != nil {
		t.Errorf("release after failed release: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name  string
		req   AcquireRequest
		field string
	}{
		{"port too high", AcquireRequest{Name: "a", Port: 70000, OwnerPID: 100}, "port"},
		{"port negative", AcquireRequest{Name: "a", Port: -1, OwnerPID: 100}, "port"},
		{"negative pid", AcquireRequest{Name: "a", OwnerPID: -5}, "owner_pid"},
		{"pid 1", AcquireRequest{Name: "a", OwnerPID: 1}, "owner_pid"},
		{"nonexistent pid", AcquireRequest{Name: "a", OwnerPID: 99999}, "owner_pid"},
		{"no pid over tcp", AcquireRequest{Name: "a"}, "owner_pid"},
		{"nonexistent launcher", AcquireRequest{Name: "a", OwnerPID: 100, LauncherPID: 99999}, "launcher_pid"},
		{"launcher is owner", AcquireRequest{Name: "a", OwnerPID: 100, LauncherPID: 100}, "launcher_pid"},
		{"empty name", AcquireRequest{Name: "", OwnerPID: 100}, "name"},
		{"long name", AcquireRequest{Name: long, OwnerPID: 100}, "name"},
		{"invalid utf-8 name", AcquireRequest{Name: "a\xffb", OwnerPID: 100}, "name"},
		{"control char", AcquireRequest{Name: "a\nb", OwnerPID: 100}, "name"},
		{"long namespace", AcquireRequest{Name: "a", Namespace: long, OwnerPID: 100}, "namespace"},
		{"unknown protocol", AcquireRequest{Name: "a", Protocol: 9, OwnerPID: 100}, "protocol"},
		{"negative ttl", AcquireRequest{Name: "a", TTL: -time.Second, OwnerPID: 100}, "ttl"},
		{"tiny ttl", AcquireRequest{Name: "a", TTL: time.Millisecond, OwnerPID: 100}, "ttl"},
		{"ttl past MaxTTL", AcquireRequest{Name: "a", TTL: MaxTTL + time.Second, OwnerPID: 100}, "ttl"},
		{"saturated ttl", AcquireRequest{Name: "a", TTL: math.MaxInt64, OwnerPID: 100}, "ttl"},
	}
	r := newRig(t, Config{})
	r.acquire(AcquireRequest{Name: "existing"})
	before := r.store.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.b.Acquire(context.Background(), tt.req)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (err %v)", fe.Field, tt.field, err)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("message %q does not start with the field", err)
			}
		})
	}
	for _, id := range []string{"", "nope", long} {
		_, err := r.b.Release(context.Background(), Caller{}, id)
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Release(%.10q) = %v, want invalid or not found", id, err)
		}
		_, err = r.b.Renew(context.Background(), Caller{}, id, time.Minute)
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Renew(%.10q) = %v, want invalid or not found", id, err)
		}
	}
	if diff := cmp.Diff(before, r.store.snapshot()); diff != "" {
		t.Errorf("bad input changed the store:\n%s", diff)
	}
}

func TestOwnerFromCaller(t *testing.T) {
	r := newRig(t, Config{})
	res, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "a", Caller: Caller{PID: 102}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lease.Owner.PID != 102 {
		t.Errorf("owner = %d, want the caller 102", res.Lease.Owner.PID)
	}
}

func TestTTLExpiryAndRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{})
		sub, err := r.b.Watch("", false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		short := r.acquire(AcquireRequest{Name: "short", TTL: 10 * time.Second}).Lease
		renewed := r.acquire(AcquireRequest{Name: "renewed", TTL: 10 * time.Second, OwnerPID: 101}).Lease
		forever := r.acquire(AcquireRequest{Name: "forever", OwnerPID: 102}).Lease
		if !short.ExpiresAt.Equal(short.CreatedAt.Add(10 * time.Second)) {
			t.Errorf("expires at %v, want created + 10s", short.ExpiresAt)
		}

		time.Sleep(6 * time.Second)
		if _, err := r.b.Renew(context.Background(), Caller{}, renewed.ID, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // 11 s in: short is due, renewed is not.
		synctest.Wait()
		if _, err := r.b.Get(short.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("short lease still there after its TTL: %v", err)
		}
		if _, err := r.b.Get(renewed.ID); err != nil {
			t.Errorf("renewed lease gone early: %v", err)
		}
		if _, ok := r.store.snapshot()[short.ID]; ok {
			t.Errorf("expired lease still stored")
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if _, err := r.b.Get(renewed.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("renewed lease still there after its new TTL: %v", err)
		}
		if _, err := r.b.Get(forever.ID); err != nil {
			t.Errorf("lease without TTL expired: %v", err)
		}
		var expired []string
		for len(sub.Events()) > 0 {
			if ev := <-sub.Events(); ev.Type == EventExpired {
				if ev.Reason != ReasonTTLExpired {
					t.Errorf("expired event reason = %v", ev.Reason)
				}
				expired = append(expired, ev.Lease.Name)
			}
		}
		if diff := cmp.Diff([]string{"short", "renewed"}, expired); diff != "" {
			t.Errorf("expired events (-want +got):\n%s", diff)
		}
		_, err = r.b.Renew(context.Background(), Caller{}, forever.ID, 0)
		mustErr(t, err, ErrInvalid)
	})
}

func TestRestoreReclaimsDeadOwners(t *testing.T) {
	r := newRig(t, Config{})
	alive := r.acquire(AcquireRequest{Name: "alive", OwnerPID: 100}).Lease
	dead := r.acquire(AcquireRequest{Name: "dead", OwnerPID: 101}).Lease
	reused := r.acquire(AcquireRequest{Name: "reused", OwnerPID: 102}).Lease
	r.b.Close()

	r.procs.kill(101)
	r.procs.reuse(102)
	r.reopen(Config{})

	got := r.b.List("")
	if len(got) != 1 || got[0].ID != alive.ID {
		t.Fatalf("after restart leases = %v, want only %s", got, alive.ID)
	}
	stored := r.store.snapshot()
	for _, l := range []Lease{dead, reused} {
		if _, ok := stored[l.ID]; ok {
			t.Errorf("lease %s of a dead owner still stored", l.Name)
		}
	}
	if !r.watcher.isWatched(alive.Owner) {
		t.Errorf("restored owner not watched")
	}
	// The restored lease holds its port.
	if s := r.b.Status(); s.PoolFree != 99 {
		t.Errorf("pool free = %d, want 99", s.PoolFree)
	}
	res := r.acquire(AcquireRequest{Name: "other", Port: int(alive.Port), OwnerPID: 103})
	if res.Lease.Port == alive.Port {
		t.Errorf("restored port handed out again")
	}
}

func TestOwnerExitReclaims(t *testing.T) {
	r := newRig(t, Config{})
	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 101, LauncherPID: 102}).Lease
	if !r.watcher.isWatched(l.Owner) || !r.watcher.isWatched(l.Launcher) {
		t.Fatalf("owner and launcher not watched")
	}
	<-sub.Events() // acquired
	r.watcher.exit(l.Owner)
	ev := <-sub.Events()
	if ev.Type != EventReclaimed || ev.Reason != ReasonOwnerExited || ev.Lease.ID != l.ID {
		t.Fatalf("event = %v/%v for %s, want reclaimed/owner exited for %s", ev.Type, ev.Reason, ev.Lease.ID, l.ID)
	}
	if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("lease still there: %v", err)
	}
	// The launcher's watch is dropped just after the event goes out; Close
	// waits for the exit loop to finish that.
	r.b.Close()
	if r.watcher.isWatched(l.Launcher) {
		t.Errorf("launcher still watched after its only lease ended")
	}
}

func TestWatchOrderAndOverflow(t *testing.T) {
	r := newRig(t, Config{})
	existing := r.acquire(AcquireRequest{Name: "existing"}).Lease
	sub, err := r.b.Watch("", true)
	if err != nil {
		t.Fatal(err)
	}
	nsSub, err := r.b.Watch("other", false)
	if err != nil {
		t.Fatal(err)
	}
	defer nsSub.Close()
	l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 101}).Lease
	if _, err := r.b.Release(context.Background(), Caller{}, l.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"acquired " + existing.ID, "acquired " + l.ID, "released " + l.ID}
	var got []string
	for range want {
		ev := <-sub.Events()
		got = append(got, ev.Type.String()+" "+ev.Lease.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := len(nsSub.Events()); n != 0 {
		t.Errorf("namespace watcher got %d events from another namespace", n)
	}

	// A reader that never reads is dropped instead of blocking the broker.
	sub.Close()
	slow, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range subBuffer + 1 {
		if _, err := r.b.Renew(context.Background(), Caller{}, existing.ID, time.Hour); err != nil {
			t.Fatalf("renew %d: %v", i, err)
		}
	}
	n := 0
	for range slow.Events() {
		n++
	}
	if n != subBuffer || !errors.Is(slow.Err(), ErrOverflow) {
		t.Errorf("slow watcher got %d events and err %v, want %d and ErrOverflow", n, slow.Err(), subBuffer)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	r := newRig(t, Config{})
	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	r.b.Close()
	if _, ok := <-sub.Events(); ok {
		t.Fatal("event after close")
	}
	mustErr(t, sub.Err(), ErrClosed)
	_, err = r.b.Acquire(context.Background(), AcquireRequest{Name: "a", OwnerPID: 100})
	mustErr(t, err, ErrClosed)
}
