package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// fullLease sets every field, with times outside UTC and below the
// microsecond, so that a dropped field or lost precision shows.
func fullLease() broker.Lease {
	cet := time.FixedZone("CET", 3600)
	return broker.Lease{
		ID:        "lease-1",
		Name:      "web",
		Namespace: "shop",
		Port:      8123,
		Protocol:  broker.TCPUDP,
		Owner: broker.Process{
			PID:       4242,
			StartTime: time.Date(2025, 3, 1, 10, 0, 0, 123456789, cet),
			Name:      "node",
			User:      "1000",
		},
		Launcher: broker.Process{
			PID:       4200,
			StartTime: time.Date(2025, 3, 1, 9, 59, 58, 987654321, cet),
			Name:      "make",
			User:      "S-1-5-21-1-2-3-1001",
		},
		CreatedAt: time.Date(2025, 3, 1, 10, 0, 1, 1, cet),
		TTL:       90 * time.Second,
		ExpiresAt: time.Date(2025, 3, 1, 10, 1, 31, 1, cet),
	}
}

func lease(i int) broker.Lease {
	return broker.Lease{
		ID:        fmt.Sprintf("lease-%03d", i),
		Name:      fmt.Sprintf("svc-%03d", i),
		Namespace: broker.DefaultNamespace,
		Port:      uint16(20000 + i),
		Protocol:  broker.TCP,
		Owner:     broker.Process{PID: 1000 + i, StartTime: time.Unix(1700000000, int64(i)).UTC()},
		CreatedAt: time.Unix(1700000100, 0).UTC(),
	}
}

func openStore(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func load(t testing.TB, s *Store) broker.State {
	t.Helper()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

// reopen closes s and opens its file again.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, s.Path())
}

// allSet fails the test for every zero field of v, recursively through
// structs, so that a field added to broker.Lease is added here too, and so
// covered by the round trip.
func allSet(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[time.Time]() {
		for i := range v.NumField() {
			allSet(t, name+"."+v.Type().Field(i).Name, v.Field(i))
		}
		return
	}
	if v.IsZero() {
		t.Errorf("%s is zero in the sample lease; set it so the round trip covers it", name)
	}
}

func TestRoundTrip(t *testing.T) {
	full := fullLease()
	allSet(t, "Lease", reflect.ValueOf(full))

	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	for _, l := range []broker.Lease{full, lease(1), lease(2)} {
		if err := s.Put(ctx, l); err != nil {
			t.Fatalf("Put(%s): %v", l.ID, err)
		}
	}
	s = reopen(t, s)
	got := load(t, s)

	want := broker.State{
		Leases: []broker.Lease{full, lease(1), lease(2)},
		LastPorts: map[broker.NameKey]uint16{
			full.Key():     full.Port,
			lease(1).Key(): lease(1).Port,
			lease(2).Key(): lease(2).Port,
		},
	}
	sortLeases := cmpopts.SortSlices(func(a, b broker.Lease) bool { return a.ID < b.ID })
	if diff := cmp.Diff(want, got, sortLeases); diff != "" {
		t.Errorf("Load after reopen (-want +got):\n%s", diff)
	}
	for _, l := range got.Leases {
		for _, tm := range []time.Time{l.CreatedAt, l.ExpiresAt, l.Owner.StartTime, l.Launcher.StartTime} {
			if !tm.IsZero() && tm.Location() != time.UTC {
				t.Errorf("lease %s: time %v is not in UTC", l.ID, tm)
			}
		}
	}
}

func TestPutReplaces(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	l := lease(1)
	if err := s.Put(ctx, l); err != nil {
		t.Fatal(err)
	}
	l.Port = 30001
	l.ExpiresAt = time.Unix(1800000000, 0).UTC()
	if err := s.Put(ctx, l); err != nil {
		t.Fatal(err)
	}
	want := broker.State{
		Leases:    []broker.Lease{l},
		LastPorts: map[broker.NameKey]uint16{l.Key(): 30001},
	}
	if diff := cmp.Diff(want, load(t, reopen(t, s))); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		want []int // the leases among 1, 2 and 3 left
	}{
		{"one", []string{"lease-002"}, []int{1, 3}},
		{"several", []string{"lease-001", "lease-003"}, []int{2}},
		{"unknown ignored", []string{"nope", "lease-001"}, []int{2, 3}},
		{"twice in one call", []string{"lease-001", "lease-001"}, []int{2, 3}},
		{"none", nil, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
			for i := 1; i <= 3; i++ {
				if err := s.Put(ctx, lease(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Delete(ctx, tt.ids...); err != nil {
				t.Fatalf("Delete(%q): %v", tt.ids, err)
			}
			want := broker.State{LastPorts: map[broker.NameKey]uint16{}}
			for _, i := range tt.want {
				want.Leases = append(want.Leases, lease(i))
			}
			// Last ports outlive their leases.
			for i := 1; i <= 3; i++ {
				want.LastPorts[lease(i).Key()] = lease(i).Port
			}
			if diff := cmp.Diff(want, load(t, reopen(t, s))); diff != "" {
				t.Errorf("Load after Delete(%q) and reopen (-want +got):\n%s", tt.ids, diff)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	bad := func(f func(*broker.Lease)) broker.Lease {
		l := lease(1)
		f(&l)
		return l
	}
	puts := []struct {
		name  string
		lease broker.Lease
		field string
	}{
		{"empty id", bad(func(l *broker.Lease) { l.ID = "" }), "id"},
		{"long id", bad(func(l *broker.Lease) { l.ID = string(make([]byte, bolt.MaxKeySize+1)) }), "id"},
		{"long name", bad(func(l *broker.Lease) { l.Name = string(make([]byte, maxNameBytes+1)) }), "name"},
		{"port 0", bad(func(l *broker.Lease) { l.Port = 0 }), "port"},
		{"no protocol", bad(func(l *broker.Lease) { l.Protocol = 0 }), "protocol"},
		{"unknown protocol", bad(func(l *broker.Lease) { l.Protocol = 9 }), "protocol"},
		{"invalid UTF-8", bad(func(l *broker.Lease) { l.Owner.Name = "\xff" }), "owner.name"},
		{"year past 9999", bad(func(l *broker.Lease) { l.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "expires_at"},
		{"year before 0", bad(func(l *broker.Lease) { l.Owner.StartTime = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }), "owner.start_time"},
	}
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	for _, tt := range puts {
		t.Run("Put/"+tt.name, func(t *testing.T) {
			err := s.Put(ctx, tt.lease)
			var fe *broker.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, broker.ErrInvalid) {
				t.Errorf("Put = %v, want a FieldError on %q matching broker.ErrInvalid", err, tt.field)
			}
		})
	}
	t.Run("Delete/empty id", func(t *testing.T) {
		err := s.Delete(ctx, "lease-001", "")
		var fe *broker.FieldError
		if !errors.As(err, &fe) || fe.Field != "ids[1]" || !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Delete = %v, want a FieldError on ids[1] matching broker.ErrInvalid", err)
		}
	})
	// Bad input is refused before it reaches a commit.
	if n := s.commits.Load(); n != 0 {
		t.Errorf("%d commits after bad input only, want 0", n)
	}
	if st := load(t, s); len(st.Leases) != 0 || len(st.LastPorts) != 0 {
		t.Errorf("Load after bad input = %+v, want nothing stored", st)
	}
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	path := filepath.Join(dir, "leases.db")
	s := openStore(t, path)
	if got := s.Path(); got != path {
		t.Errorf("Path() = %q, want %q", got, path)
	}
	if st := load(t, s); len(st.Leases) != 0 || st.LastPorts == nil || len(st.LastPorts) != 0 {
		t.Errorf("Load on a new file = %+v, want no leases and an empty LastPorts map", st)
	}
	if runtime.GOOS == "windows" {
		return // no Unix permission bits
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, got, c.want)
		}
	}
}

// An empty file holds nothing to lose; it is what a crash right after
// creating the file leaves, so it opens as a new store.
func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path)
	if err := s.Put(t.Context(), lease(1)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if st := load(t, reopen(t, s)); len(st.Leases) != 1 {
		t.Errorf("Load = %+v, want the one lease", st)
	}
}

// flock locks an open file description, not a process, so a second Open in
// the same process is refused like one in another process.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	first := openStore(t, path)

	for _, timeout := range []time.Duration{0, DefaultLockTimeout} {
		_, err := Open(path, WithLockTimeout(timeout))
		if !errors.Is(err, ErrLocked) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("second Open with timeout %v = %v, want ErrLocked", timeout, err)
		}
		for _, want := range []string{path, "another portbrokerd is using this state dir"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("second Open error %q does not say %q", err, want)
			}
		}
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, path)
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, loadErr := s.Load(ctx)
	for name, err := range map[string]error{
		"Put":              s.Put(ctx, lease(1)),
		"Delete":           s.Delete(ctx, "lease-001"),
		"Delete with none": s.Delete(ctx),
		"Load":             loadErr,
	} {
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("%s after Close = %v, want broker.ErrClosed", name, err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, lease(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "lease-001"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = %v, want context.Canceled", err)
	}
	if st := load(t, s); len(st.Leases) != 0 {
		t.Errorf("Load = %+v, want nothing stored", st)
	}
}

func TestConcurrentPuts(t *testing.T) {
	const n = 32
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "leases.db"))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.Put(ctx, lease(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(%d): %v", i, err)
		}
	}
	if commits, ops := s.commits.Load(), s.committed.Load(); ops != n || commits > ops {
		t.Errorf("%d commits of %d ops, want %d ops in at most as many commits", commits, ops, n)
	}
	got := load(t, reopen(t, s))
	if len(got.Leases) != n || len(got.LastPorts) != n {
		t.Fatalf("after reopen: %d leases and %d last ports, want %d of each", len(got.Leases), len(got.LastPorts), n)
	}
	for i, l := range got.Leases { // in key order
		if diff := cmp.Diff(lease(i), l); diff != "" {
			t.Errorf("lease %d (-want +got):\n%s", i, diff)
		}
	}
}

// holdBatches returns a batch hook that parks the committing caller on its next
// batch until release is called, and a release function.
func holdBatches() (hook func(), release func()) {
	gate := make(chan struct{})
	return func() { <-gate }, sync.OnceFunc(func() { close(gate) })
}

// TestGroupCommit shows that callers who arrive during a commit share the
// next: the first caller is held, committing its own op, until every other
// caller has queued its own.
func TestGroupCommit(t *testing.T) {
	const n = 32
	path := filepath.Join(t.TempDir(), "leases.db")
	synctest.Test(t, func(t *testing.T) {
		hook, release := holdBatches()
		s := openStore(t, path, withBatchHook(hook))
		defer release()

		var wg sync.WaitGroup
		errs := make([]error, n)
		wg.Go(func() { errs[0] = s.Put(t.Context(), lease(0)) })
		synctest.Wait() // the first caller commits lease 0
		for i := 1; i < n; i++ {
			wg.Go(func() { errs[i] = s.Put(t.Context(), lease(i)) })
		}
		synctest.Wait() // the rest queue up
		release()
		wg.Wait()

		for i, err := range errs {
			if err != nil {
				t.Errorf("Put(%d): %v", i, err)
			}
		}
		if commits, ops := s.commits.Load(), s.committed.Load(); commits != 1 || ops != n {
			t.Errorf("%d commits of %d ops, want 1 of %d", commits, ops, n)
		}
		if st := load(t, s); len(st.Leases) != n {
			t.Errorf("Load: %d leases, want %d", len(st.Leases), n)
		}
	})
}

// When a commit fails, every caller in it learns so.
func TestCommitErrorReachesEveryCaller(t *testing.T) {
	const n = 3
	path := filepath.Join(t.TempDir(), "leases.db")
	synctest.Test(t, func(t *testing.T) {
		hook, release := holdBatches()
		s := openStore(t, path, withBatchHook(hook))
		defer release()

		var wg sync.WaitGroup
		errs := make([]error, n)
		wg.Go(func() { errs[0] = s.Put(t.Context(), lease(0)) })
		synctest.Wait()
		wg.Go(func() { errs[1] = s.Put(t.Context(), lease(1)) })
		wg.Go(func() { errs[2] = s.Delete(t.Context(), "lease-009") })
		synctest.Wait()
		// Break the file under the held batch.
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLeases) }); err != nil {
			t.Fatal(err)
		}
		release()
		wg.Wait()

		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "missing") {
				t.Errorf("caller %d: error %v, want the failed commit's", i, err)
			}
		}
		if n := s.commits.Load(); n != 0 {
			t.Errorf("%d successful commits, want 0", n)
		}
	})
}

// Close commits the batch it finds under way and refuses the ops not yet
// handed over.
func TestCloseWithPendingOps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	synctest.Test(t, func(t *testing.T) {
		hook, release := holdBatches()
		s, err := Open(path, withBatchHook(hook))
		if err != nil {
			t.Fatal(err)
		}
		defer release()

		var wg sync.WaitGroup
		var taken, waiting, closeErr error
		wg.Go(func() { taken = s.Put(t.Context(), lease(1)) })
		synctest.Wait()
		wg.Go(func() { waiting = s.Put(t.Context(), lease(2)) })
		synctest.Wait()
		wg.Go(func() { closeErr = s.Close() })
		synctest.Wait() // Close waits for the commit under way; lease 2 gives up
		release()
		wg.Wait()
		if !errors.Is(waiting, broker.ErrClosed) {
			t.Errorf("Put waiting to hand over during Close = %v, want broker.ErrClosed", waiting)
		}
		if taken != nil {
			t.Errorf("Put taken before Close = %v, want it committed", taken)
		}
		if closeErr != nil {
			t.Errorf("Close: %v", closeErr)
		}
	})
	st := load(t, openStore(t, path))
	if len(st.Leases) != 1 || st.Leases[0].ID != lease(1).ID {
		t.Errorf("after reopen: %+v, want only %s", st.Leases, lease(1).ID)
	}
}
