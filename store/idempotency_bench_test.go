package store

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterWriteIdempotent is BenchmarkClusterWrite (batching on) with
// a new Idempotency-Key on every write, as the Go client sends: it measures
// what the dedup table and the leader's admission check cost on the write
// path.
//
//	go test ./store -run x -bench ClusterWriteIdempotent -benchtime 5s -count 3
func BenchmarkClusterWriteIdempotent(b *testing.B) {
	c := newTestCluster(b, 3, func(cfg *Config) {
		cfg.Logger = slog.New(slog.DiscardHandler)
		// Production raft timings: the test harness's short ones lose
		// leadership under this load on a busy 2-core machine.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	})
	leader := c.leader()
	value := []byte(fmt.Sprintf(`{"pad":"%0190d"}`, 0))
	var n atomic.Int64
	b.SetParallelism(32) // 64 writers on 2 CPUs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			opts := WriteOptions{IdempotencyKey: fmt.Sprintf("req-%036d", i), Fingerprint: [32]byte{byte(i)}}
			if _, err := leader.store.Put(ctxTimeout(b, 10*time.Second), fmt.Sprintf("bench-%05d", i%10000), value, time.Hour, false, opts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
