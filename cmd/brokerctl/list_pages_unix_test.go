//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
)

// TestLeasesPastOneMessage: a pool full of leases with 128-byte names and
// namespaces lists as more than the 4 MiB a gRPC message may carry, so
// the client and brokerctl must follow ListLeases' pages to get them all.
func TestLeasesPastOneMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("acquires 15000 leases")
	}
	const n, namespaces = 15000, 4
	d := clienttest.Start(t, clienttest.Binary(t), "--range", "10000-29999")
	c, err := client.New(t.Context(), client.WithAddr(d.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nsName := func(i int) string { return fmt.Sprintf("ns%d-%s", i%namespaces, strings.Repeat("n", 124)) }
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if _, err := c.Acquire(t.Context(), fmt.Sprintf("%0128d", i), client.WithNamespace(nsName(i))); err != nil {
					errs <- fmt.Errorf("acquire %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	all, err := c.List(t.Context(), "")
	if err != nil || len(all) != n {
		t.Fatalf("client List: %d leases, %v; want %d", len(all), err, n)
	}
	r := brokerctl(t, "--addr", d.Addr, "leases", "-o", "json")
	if r.code != 0 {
		t.Fatalf("brokerctl leases: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(r.stdout) <= 4<<20 {
		t.Errorf("listing is %d bytes, not past one 4 MiB message", len(r.stdout))
	}
	var out struct {
		Leases []struct{ ID string } `json:"leases"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("brokerctl leases -o json: %v", err)
	}
	seen := map[string]bool{}
	for _, l := range out.Leases {
		seen[l.ID] = true
	}
	if len(out.Leases) != n || len(seen) != n {
		t.Errorf("brokerctl listed %d leases (%d distinct), want %d", len(out.Leases), len(seen), n)
	}
	r = brokerctl(t, "--addr", d.Addr, "leases", "--namespace", nsName(1))
	if got := len(lines(r.stdout)) - 1; r.code != 0 || got != n/namespaces {
		t.Errorf("brokerctl leases --namespace: exit %d, %d rows; want %d", r.code, got, n/namespaces)
	}
}
