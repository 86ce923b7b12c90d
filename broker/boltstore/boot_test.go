package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/portbroker/portbroker/broker"
)

// fileIn writes a state file holding leases 1 to n, opened in boot, and
// returns its path and the last ports it remembers.
func fileIn(t *testing.T, boot string, n int) (string, map[broker.NameKey]uint16) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "leases.db")
	s := openStore(t, path, WithBootID(boot))
	want := map[broker.NameKey]uint16{}
	for i := 1; i <= n; i++ {
		l := lease(i)
		if err := s.Put(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		want[l.Key()] = l.Port
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func checkLastPorts(t *testing.T, got, want map[broker.NameKey]uint16) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d last ports, want %d", len(got), len(want))
	}
	for k, p := range want {
		if got[k] != p {
			t.Errorf("last port of %v = %d, want %d", k, got[k], p)
		}
	}
}

func TestRebootVoidsLeasesKeepsLastPorts(t *testing.T) {
	path, ports := fileIn(t, "boot-a", 5)

	// The same boot: a restart of the daemon keeps everything.
	s := openStore(t, path, WithBootID("boot-a"))
	if rep := s.Boot(); rep.Rebooted || rep.Voided != 0 {
		t.Errorf("same boot: Boot() = %+v, want no reboot", rep)
	}
	if st := load(t, s); len(st.Leases) != 5 {
		t.Errorf("same boot: %d leases, want 5", len(st.Leases))
	}
	s.Close()

	// Another boot: every lease is void, every last port kept.
	s = openStore(t, path, WithBootID("boot-b"))
	rep := s.Boot()
	if !rep.Rebooted || rep.Voided != 5 || rep.TornAside != "" || rep.LastPorts != 5 {
		t.Errorf("new boot: Boot() = %+v, want rebooted, 5 voided, not torn, 5 last ports", rep)
	}
	st := load(t, s)
	if len(st.Leases) != 0 {
		t.Errorf("new boot: %d leases, want none", len(st.Leases))
	}
	checkLastPorts(t, st.LastPorts, ports)
	// Leases taken in the new boot survive its restarts.
	if err := s.Put(t.Context(), lease(9)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, path, WithBootID("boot-b"))
	if rep := s.Boot(); rep.Rebooted {
		t.Errorf("second start in boot b: Boot() = %+v, want no reboot", rep)
	}
	if st := load(t, s); len(st.Leases) != 1 || st.Leases[0].ID != lease(9).ID {
		t.Errorf("second start in boot b: leases %v, want only %s", st.Leases, lease(9).ID)
	}
}

// A store opened once without a boot id (the boot source failed) must not
// have its leases voided later on the word of an older boot file.
func TestNoBootIDForgetsTheBoot(t *testing.T) {
	path, _ := fileIn(t, "boot-a", 3)
	s := openStore(t, path)
	s.Close()
	if _, err := os.Stat(path + bootSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("boot file after an open without a boot id: %v, want none", err)
	}
	s = openStore(t, path, WithBootID("boot-b"))
	if rep := s.Boot(); rep.Rebooted {
		t.Errorf("Boot() = %+v, want no reboot: no boot was on record", rep)
	}
	if st := load(t, s); len(st.Leases) != 3 {
		t.Errorf("%d leases, want 3", len(st.Leases))
	}
}

// A boot file that does not hold a boot id names no boot: the store is
// from another boot.
func TestUnreadableBootFile(t *testing.T) {
	path, _ := fileIn(t, "boot-a", 2)
	writeFile(t, path+bootSuffix, []byte("\x00\xff garbage"))
	s := openStore(t, path, WithBootID("boot-a"))
	if rep := s.Boot(); !rep.Rebooted || rep.Voided != 2 {
		t.Errorf("Boot() = %+v, want a reboot voiding 2", rep)
	}
	s.Close()
	if got := strings.TrimSpace(string(readFile(t, path+bootSuffix))); got != "boot-a" {
		t.Errorf("boot file holds %q, want boot-a", got)
	}
}

func TestBadBootID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	for _, id := range []string{"with space", "new\nline", strings.Repeat("x", maxBootID+1), "ümlaut"} {
		if s, err := Open(path, WithBootID(id)); err == nil {
			s.Close()
			t.Errorf("Open with boot id %q succeeded, want an error", id)
		} else if !strings.Contains(err.Error(), "boot id") {
			t.Errorf("Open with boot id %q: %v, want it to name the boot id", id, err)
		}
	}
}

// Every damage TestOpenCorrupt refuses is recovered after a reboot (the
// leases are void anyway), and still refused within the boot; a file a
// newer portbrokerd wrote is not damage and is refused in both.
func TestTornStoreAfterReboot(t *testing.T) {
	for _, tt := range damages {
		t.Run(tt.name, func(t *testing.T) {
			path, ports := fileIn(t, "boot-a", 2)
			tt.damage(t, path)
			before := readFile(t, path)

			// Within the boot: refused, the file untouched.
			s, err := Open(path, WithBootID("boot-a"))
			if err == nil {
				s.Close()
				t.Fatal("Open in the same boot succeeded, want ErrCorrupt")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open in the same boot = %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(before, readFile(t, path)) {
				t.Fatal("a refused Open changed the file")
			}

			s, err = Open(path, WithBootID("boot-b"))
			if tt.name == "newer schema" {
				if err == nil {
					s.Close()
					t.Fatal("Open after a reboot of a newer file succeeded, want ErrCorrupt")
				}
				if !bytes.Equal(before, readFile(t, path)) {
					t.Fatal("a refused Open changed the file")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open after a reboot: %v, want a clean start", err)
			}
			defer s.Close()
			rep := s.Boot()
			t.Logf("Boot() = %+v", rep)
			if !rep.Rebooted || rep.TornAside == "" || !errors.Is(rep.Torn, ErrCorrupt) {
				t.Fatalf("Boot() = %+v, want rebooted and torn", rep)
			}
			if aside := readFile(t, rep.TornAside); !bytes.Equal(before, aside) {
				t.Errorf("the torn file was not kept as it was at %s", rep.TornAside)
			}
			st := load(t, s)
			if len(st.Leases) != 0 {
				t.Errorf("%d leases after recovering a torn file, want none", len(st.Leases))
			}
			// What could be read of the last ports is kept, nothing else.
			for k, p := range st.LastPorts {
				if ports[k] != p {
					t.Errorf("recovered last port %v = %d, which the file never held", k, p)
				}
			}
			if rep.LastPorts != len(st.LastPorts) {
				t.Errorf("Boot().LastPorts = %d, Load has %d", rep.LastPorts, len(st.LastPorts))
			}
			switch tt.name {
			case "undecodable lease record", "lease record of an unknown version", "lease record under another key",
				"lease record is a bucket", "leases bucket missing":
				// The last ports are intact in these.
				checkLastPorts(t, st.LastPorts, ports)
			}
			// The rebuilt file is whole, and vouched for by the new boot.
			if err := s.Put(t.Context(), lease(7)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openStore(t, path, WithBootID("boot-b"))
			if rep := s.Boot(); rep.Rebooted {
				t.Errorf("reopen in the new boot: %+v, want no reboot", rep)
			}
			if st := load(t, s); len(st.Leases) != 1 {
				t.Errorf("reopen in the new boot: %d leases, want 1", len(st.Leases))
			}
		})
	}
}

// The torn file a power loss leaves: pages the last commits wrote never
// reached the disk. Zeroing every page past the meta pages leaves the
// meta pointing at nothing; after a reboot the store starts clean.
func TestPowerLossZeroedPages(t *testing.T) {
	path, _ := fileIn(t, "boot-a", 50)
	_, pageSize := pagesEnd(t, path)
	data := readFile(t, path)
	clear(data[2*pageSize:])
	writeFile(t, path, data)
	if s, err := Open(path, WithBootID("boot-a")); err == nil {
		s.Close()
		t.Fatal("Open in the same boot succeeded, want ErrCorrupt")
	}
	s := openStore(t, path, WithBootID("boot-b"))
	if rep := s.Boot(); rep.TornAside == "" {
		t.Errorf("Boot() = %+v, want torn", rep)
	}
	if st := load(t, s); len(st.Leases) != 0 {
		t.Errorf("%d leases, want none", len(st.Leases))
	}
}

func TestSameBoot(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		a, b string
		same bool
	}{
		{"linux:abc", "linux:abc", true},
		{"linux:abc", "linux:abd", false},
		{broker.BootTimeID(t0), broker.BootTimeID(t0.Add(2 * time.Second)), true},
		{broker.BootTimeID(t0), broker.BootTimeID(t0.Add(-bootTimeSlack + time.Second)), true},
		{broker.BootTimeID(t0), broker.BootTimeID(t0.Add(bootTimeSlack)), false},
		{broker.BootTimeID(t0), broker.BootTimeID(t0.Add(-bootTimeSlack)), false},
		{broker.BootTimeID(t0), "linux:" + strconv.FormatInt(t0.Unix(), 10), false},
		{"boottime:x", "boottime:x", true},
		{"boottime:x", "boottime:y", false},
	}
	for _, tt := range tests {
		if got := sameBoot(tt.a, tt.b); got != tt.same {
			t.Errorf("sameBoot(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// The file keeps the last ports of the MaxLastPorts most recently used
// names; a name used again counts as new.
func TestLastPortsCapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	s := openStore(t, path)
	named := func(i int) broker.Lease {
		l := lease(0)
		l.ID = fmt.Sprintf("id-%d", i)
		l.Name = fmt.Sprintf("name-%d", i)
		l.Port = uint16(1 + i%60000)
		return l
	}
	extra := 100
	for i := range MaxLastPorts + extra {
		if err := s.Put(t.Context(), named(i)); err != nil {
			t.Fatal(err)
		}
		if i == MaxLastPorts-1 {
			// Name 0 is the oldest; using it again keeps it.
			if err := s.Put(t.Context(), named(0)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = reopen(t, s)
	st := load(t, s)
	// Passing the cap at name MaxLastPorts dropped the oldest down to
	// MaxLastPorts*7/8; the extra names came after.
	want := MaxLastPorts - MaxLastPorts/8 + extra - 1
	if len(st.LastPorts) != want {
		t.Fatalf("%d last ports, want %d", len(st.LastPorts), want)
	}
	if s.recent.n != want {
		t.Errorf("recency counts %d records, want %d", s.recent.n, want)
	}
	// Recency order, oldest first: 1, 2, ..., MaxLastPorts-1, 0, MaxLastPorts, ...
	order := []int{}
	for i := 1; i < MaxLastPorts; i++ {
		order = append(order, i)
	}
	order = append(order, 0)
	for i := MaxLastPorts; i < MaxLastPorts+extra; i++ {
		order = append(order, i)
	}
	dropped := MaxLastPorts + 1 - (MaxLastPorts - MaxLastPorts/8)
	for rank, i := range order {
		_, kept := st.LastPorts[named(i).Key()]
		if want := rank >= dropped; kept != want {
			t.Errorf("name-%d (recency rank %d) kept = %v, want %v", i, rank, kept, want)
		}
	}
}

// A failed commit must not leave the recency ahead of the file: the name
// a rolled-back change used is not counted.
func TestRecencyFollowsFailedCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	synctest.Test(t, func(t *testing.T) {
		hook, release := holdBatches()
		s := openStore(t, path, withBatchHook(hook))
		defer release()
		var wg sync.WaitGroup
		var errs [2]error
		// One batch: a new name, then a change bbolt refuses (a key over
		// its limit, which Put would not build) that rolls it back.
		wg.Go(func() { errs[0] = s.Put(t.Context(), lease(1)) })
		synctest.Wait()
		rec, err := encodeLease(lease(2))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			errs[1] = s.do(t.Context(), &op{putID: bytes.Repeat([]byte("k"), bolt.MaxKeySize+1), putRec: rec,
				nameKey: encodeNameKey(lease(2).Key()), port: lease(2).Port})
		})
		synctest.Wait()
		release()
		wg.Wait()
		if errs[0] == nil || errs[1] == nil {
			t.Fatalf("commit errors %v, want both to fail", errs)
		}
		if n := s.recent.n; n != 0 {
			t.Errorf("recency counts %d names after the rollback, want 0", n)
		}
		if err := s.Put(t.Context(), lease(3)); err != nil {
			t.Fatal(err)
		}
		if n := s.recent.n; n != 1 {
			t.Errorf("recency counts %d names, want 1", n)
		}
	})
}

// A version 1 file (bare ports, no recency) opens, keeps its last ports
// and is upgraded.
func TestUpgradeV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := encodeLease(lease(1))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		meta.Put(keySchema, []byte("1"))
		leases, _ := tx.CreateBucket(bucketLeases)
		leases.Put([]byte(lease(1).ID), rec)
		lp, _ := tx.CreateBucket(bucketLastPorts)
		lp.Put(encodeNameKey(lease(1).Key()), encodePort(lease(1).Port))
		return lp.Put(encodeNameKey(lease(2).Key()), encodePort(lease(2).Port))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openStore(t, path)
	st := load(t, s)
	if len(st.Leases) != 1 {
		t.Errorf("%d leases, want 1", len(st.Leases))
	}
	checkLastPorts(t, st.LastPorts, map[broker.NameKey]uint16{lease(1).Key(): lease(1).Port, lease(2).Key(): lease(2).Port})
	s.Close()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != strconv.Itoa(schemaVersion) {
			t.Errorf("schema after upgrade = %s, want %d", v, schemaVersion)
		}
		return nil
	})
}

// Changes are synced once, syncDelay after the first of them, and not
// again while nothing changes; Close syncs.
func TestBackgroundSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(filepath.Join(t.TempDir(), "leases.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 3 {
			if err := s.Put(t.Context(), lease(i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.syncs.Load(); n != 0 {
			t.Fatalf("%d syncs right after the changes, want 0", n)
		}
		time.Sleep(syncDelay - time.Millisecond)
		synctest.Wait()
		if n := s.syncs.Load(); n != 0 {
			t.Fatalf("%d syncs before syncDelay, want 0", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := s.syncs.Load(); n != 1 {
			t.Fatalf("%d syncs at syncDelay, want 1", n)
		}
		time.Sleep(10 * syncDelay)
		synctest.Wait()
		if n := s.syncs.Load(); n != 1 {
			t.Fatalf("%d syncs while idle, want still 1", n)
		}
		if err := s.Delete(t.Context(), lease(0).ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(syncDelay)
		synctest.Wait()
		if n := s.syncs.Load(); n != 2 {
			t.Fatalf("%d syncs after a second change, want 2", n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := s.syncs.Load(); n != 3 {
			t.Fatalf("%d syncs after Close, want 3", n)
		}
	})
}

// The sync hook hears of every sync (background, explicit and closing),
// in order, with the transaction each made durable.
func TestSyncHookReportsDurableTxid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var synced []uint64
		got := func() []uint64 { mu.Lock(); defer mu.Unlock(); return slices.Clone(synced) }
		s, err := Open(filepath.Join(t.TempDir(), "leases.db"), WithSyncHook(func(txid uint64) {
			mu.Lock()
			defer mu.Unlock()
			synced = append(synced, txid)
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		txid := func() uint64 {
			var id int
			if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
				t.Fatal(err)
			}
			return uint64(id)
		}
		var want []uint64
		if err := s.Put(t.Context(), lease(1)); err != nil {
			t.Fatal(err)
		}
		if len(got()) != 0 {
			t.Fatalf("hook called %v before any sync", got())
		}
		time.Sleep(syncDelay)
		synctest.Wait()
		want = append(want, txid())
		if err := s.Put(t.Context(), lease(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		want = append(want, txid())
		if err := s.Delete(t.Context(), lease(1).ID); err != nil {
			t.Fatal(err)
		}
		want = append(want, txid())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got(), want) || !slices.IsSorted(want) || want[0] == want[2] {
			t.Errorf("hook saw transactions %v, want %v (rising)", got(), want)
		}
		if err := s.Sync(); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Sync after Close = %v, want ErrClosed", err)
		}
	})
}
