package broker

import (
	"context"
	"fmt"
	"testing"
)

// benchBroker opens a broker on in-memory fakes with held leases already
// granted, so the benchmarks measure the core alone.
func benchBroker(b *testing.B, rng PortRange, held int) *Broker {
	b.Helper()
	procs := newFakeProcs(100)
	br, err := Open(context.Background(), Config{Pool: PoolConfig{Range: rng, Ephemeral: PortRange{First: 49152, Last: 65535}}},
		Deps{Store: newMemStore(), Processes: procs, Prober: newFakeProber()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	for i := range held {
		if _, err := br.Acquire(context.Background(), AcquireRequest{Name: fmt.Sprintf("held-%d", i), OwnerPID: 100}); err != nil {
			b.Fatalf("lease %d: %v", i, err)
		}
	}
	return br
}

// BenchmarkAcquireRelease is one acquire and one release with n other
// leases live: allocation must not slow down as the pool fills.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("live=%d", n), func(b *testing.B) {
			br := benchBroker(b, PortRange{First: 20000, Last: 32767}, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				res, err := br.Acquire(ctx, AcquireRequest{Name: "bench", OwnerPID: 100})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := br.Release(ctx, Caller{}, res.Lease.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPoolEmptyRefusal is the refusal of an acquire when all 10,000
// ports of the pool are held: it must not scan the pool.
func BenchmarkPoolEmptyRefusal(b *testing.B) {
	br := benchBroker(b, PortRange{First: 20000, Last: 29999}, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Acquire(ctx, AcquireRequest{Name: "one-too-many", OwnerPID: 100}); err == nil {
			b.Fatal("acquire from a full pool succeeded")
		}
	}
}
