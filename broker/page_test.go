package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestListPage pages through tables of random shapes with random page
// sizes, while leases come and go between pages, and checks that every
// lease live throughout is listed exactly once, in order.
func TestListPage(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 158))
			r := newRig(t, Config{Pool: widePool, Limits: Limits{LeasesPerUser: 100000, Leases: 100000}})
			n := rng.IntN(1500)
			for i := range n {
				r.acquire(AcquireRequest{Namespace: []string{"a", "b", "default"}[rng.IntN(3)], Name: fmt.Sprintf("s%d", rng.IntN(1<<30)), OwnerPID: 100 + i%4})
			}
			ns := []string{"", "a", "b", "nope"}[rng.IntN(4)]
			before := r.b.List(ns)
			var got []Lease
			var churned []string
			token := ""
			for pages := 0; ; pages++ {
				size := []int{0, 1, 7, 100, 5000}[rng.IntN(5)]
				page, err := r.b.ListPage(ns, size, token)
				if err != nil {
					t.Fatal(err)
				}
				want := size
				if size == 0 {
					want = DefaultPageSize
				} else if size > MaxPageSize {
					want = MaxPageSize
				}
				if len(page.Leases) > want || (page.Next != "" && len(page.Leases) != want) {
					t.Fatalf("page of %d leases for size %d (next %q)", len(page.Leases), size, page.Next)
				}
				got = append(got, page.Leases...)
				if page.Next == "" {
					break
				}
				token = page.Next
				// A lease that comes and one that goes between pages.
				l := r.acquire(AcquireRequest{Namespace: "a", Name: fmt.Sprintf("new%d", pages), OwnerPID: 101})
				churned = append(churned, l.Lease.ID)
				if live := r.b.List(""); len(live) > 0 {
					victim := live[rng.IntN(len(live))]
					if _, err := r.b.Release(context.Background(), Caller{}, victim.ID); err != nil {
						t.Fatal(err)
					}
					churned = append(churned, victim.ID)
				}
			}
			skip := map[string]bool{}
			for _, id := range churned {
				skip[id] = true
			}
			var gotStable, wantStable []string
			seen := map[string]bool{}
			for i, l := range got {
				if seen[l.ID] {
					t.Fatalf("lease %s listed twice", l.ID)
				}
				seen[l.ID] = true
				if i > 0 && keyOfLease(&got[i-1]).compare(keyOfLease(&l)) >= 0 {
					t.Fatalf("out of order at %d", i)
				}
				if ns != "" && l.Namespace != ns {
					t.Fatalf("lease of namespace %q listed for %q", l.Namespace, ns)
				}
				if !skip[l.ID] {
					gotStable = append(gotStable, l.ID)
				}
			}
			for _, l := range before {
				if !skip[l.ID] {
					wantStable = append(wantStable, l.ID)
				}
			}
			if diff := cmp.Diff(wantStable, gotStable); diff != "" {
				t.Errorf("stable leases listed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListPageBadInput(t *testing.T) {
	r := newRig(t, Config{})
	for i := range 5 {
		r.acquire(AcquireRequest{Name: fmt.Sprint("s", i), OwnerPID: 100})
	}
	page, err := r.b.ListPage("default", 2, "")
	if err != nil || page.Next == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	tests := []struct {
		name, ns, token, field string
		size                   int
	}{
		{"negative size", "default", "", "page_size", -1},
		{"garbage token", "default", "!!not base64", "page_token", 2},
		{"token of another namespace", "", page.Next, "page_token", 2},
		{"truncated token", "default", page.Next[:len(page.Next)/2], "page_token", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.b.ListPage(tt.ns, tt.size, tt.token)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want invalid %s", err, tt.field)
			}
		})
	}
}
