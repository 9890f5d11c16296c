package store

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterWrite: 200-byte sets from 64 concurrent writers to an
// in-process three-node cluster (real bbolt with fsync, loopback TCP), on the
// leader, with and without write batching. Compare with benchstat; the
// entries/op metric is raft log entries per write.
//
//	go test ./store -run x -bench ClusterWrite -benchtime 5s -count 6
func BenchmarkClusterWrite(b *testing.B) {
	for _, batching := range []bool{true, false} {
		b.Run(fmt.Sprintf("batching=%v", batching), func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *Config) {
				cfg.DisableWriteBatching = !batching
				cfg.Logger = slog.New(slog.DiscardHandler)
			})
			leader := c.leader()
			value := []byte(fmt.Sprintf(`{"pad":"%0190d"}`, 0))
			var n atomic.Int64
			first := leader.store.AppliedIndex()
			b.SetParallelism(32) // 64 writers on 2 CPUs
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("bench-%05d", n.Add(1)%10000)
					if _, err := leader.store.Set(ctxTimeout(b, 10*time.Second), key, value, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(leader.store.AppliedIndex()-first)/float64(b.N), "entries/op")
		})
	}
}
