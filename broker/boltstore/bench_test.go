package boltstore

import (
	"path/filepath"
	"sync/atomic"
	"testing"
)

// The benchmarks write to a real file, so each commit pays a real fsync;
// ops/commit shows how many changes shared one.

func reportOpsPerCommit(b *testing.B, s *Store) {
	if c := s.commits.Load(); c > 0 {
		b.ReportMetric(float64(s.committed.Load())/float64(c), "ops/commit")
	}
}

func BenchmarkPut(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "leases.db"))
	ctx := b.Context()
	i := 0
	for b.Loop() {
		if err := s.Put(ctx, lease(i%256)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportOpsPerCommit(b, s)
}

func BenchmarkPutParallel(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "leases.db"))
	ctx := b.Context()
	var next atomic.Int64
	b.SetParallelism(16) // 16 callers per CPU, like a busy daemon
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Put(ctx, lease(int(next.Add(1)%256))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerCommit(b, s)
}
