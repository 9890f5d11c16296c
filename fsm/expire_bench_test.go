package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyExpire: one iteration decodes and applies one expire command
// of 1000 due items against a 100k-key store (a third of it expiring), as a
// replica does during a mass expiry; the timer stops while the FSM is refilled.
func BenchmarkApplyExpire(b *testing.B) {
	const batch = 1000
	f := benchFSM(b, benchKeys)
	idx := uint64(benchKeys)
	b.ReportAllocs()
	for b.Loop() {
		items := f.ExpiredItems(1<<62, batch)
		if len(items) < batch {
			b.StopTimer()
			f = benchFSM(b, benchKeys)
			items = f.ExpiredItems(1<<62, batch)
			b.StartTimer()
		}
		idx++
		f.ApplyBatch([]*raft.Log{cmdLog(idx, Command{Op: OpExpire, Now: 1 << 62, Items: items})})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/item")
}
