package boltstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

// TestCommitsRacingClose drives many callers through the shared commits
// while Close lands at a random point, for fixed seeds. Each caller keeps
// a model of its own leases, changed only by calls that returned nil;
// after a reopen the file must hold exactly the union of the models. A
// change that failed with ErrClosed must not be in the file, and one
// that returned nil must be.
func TestCommitsRacingClose(t *testing.T) {
	const callers, ids, steps = 8, 4, 60
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			path := filepath.Join(t.TempDir(), "leases.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			closeAt := int64(rng.IntN(callers * steps))
			var calls atomic.Int64
			var closeOnce sync.Once
			models := make([]map[string]broker.Lease, callers)
			var wg sync.WaitGroup
			for c := range callers {
				crng := rand.New(rand.NewPCG(seed, uint64(c)+1))
				model := map[string]broker.Lease{}
				models[c] = model
				wg.Go(func() {
					for range steps {
						if calls.Add(1) == closeAt {
							closeOnce.Do(func() { go s.Close() })
						}
						i := c*ids + crng.IntN(ids)
						l := lease(i)
						l.Port = uint16(20000 + crng.IntN(1000))
						var err error
						if crng.IntN(3) == 0 {
							err = s.Delete(t.Context(), l.ID)
							if err == nil {
								delete(model, l.ID)
							}
						} else {
							err = s.Put(t.Context(), l)
							if err == nil {
								model[l.ID] = l
							}
						}
						switch {
						case errors.Is(err, broker.ErrClosed):
							return
						case err != nil:
							t.Errorf("caller %d: %v", c, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			want := map[string]broker.Lease{}
			for _, m := range models {
				for id, l := range m {
					want[id] = l
				}
			}
			got := load(t, openStore(t, path))
			if len(got.Leases) != len(want) {
				t.Errorf("file holds %d leases, the callers were told of %d", len(got.Leases), len(want))
			}
			for _, l := range got.Leases {
				if w, ok := want[l.ID]; !ok {
					t.Errorf("file holds %s, which no successful call left", l.ID)
				} else if w.Port != l.Port {
					t.Errorf("%s: port %d in the file, %d from the last successful Put", l.ID, l.Port, w.Port)
				}
			}
		})
	}
}

// TestLeaderGathersReadyCallers: on one P, as the daemon runs, callers
// whose ops are ready when a commit starts share it instead of each
// waiting for a commit of its own; and every op lands.
func TestLeaderGathersReadyCallers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var commits atomic.Int64
	path := filepath.Join(t.TempDir(), "leases.db")
	s := openStore(t, path, withBatchHook(func() { commits.Add(1) }))
	const callers = 16
	for round := range 5 {
		commits.Store(0)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				if err := s.Put(t.Context(), lease(round*callers+c)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := commits.Load(); n > callers/4 {
			t.Errorf("round %d: %d callers ready together took %d commits, want at most %d", round, callers, n, callers/4)
		}
	}
	if n := len(load(t, s).Leases); n != 5*callers {
		t.Errorf("%d leases in the file, want %d", n, 5*callers)
	}
}
