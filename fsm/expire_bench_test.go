package fsm

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyExpire: one iteration decodes and applies one expire command
// of 1000 due items against a 100k-key store (a third of it expiring), as a
// replica does during a mass expiry; the timer stops while the FSM is refilled.
// apply-cpu-ns/item is the process CPU time of the apply alone (decode and
// removal, what every replica pays), which a loaded machine disturbs less
// than wall time.
func BenchmarkApplyExpire(b *testing.B) {
	const batch = 1000
	f := benchFSM(b, benchKeys)
	idx := uint64(benchKeys)
	b.ReportAllocs()
	var cpu time.Duration // process CPU time of the applies
	for b.Loop() {
		items := f.ExpiredItems(1<<62, batch)
		if len(items) < batch {
			b.StopTimer()
			f = benchFSM(b, benchKeys)
			items = f.ExpiredItems(1<<62, batch)
			b.StartTimer()
		}
		idx++
		l := cmdLog(idx, Command{Op: OpExpire, Now: 1 << 62, Items: items})
		c0 := processCPU(b)
		f.ApplyBatch([]*raft.Log{l})
		cpu += processCPU(b) - c0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/item")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "apply-cpu-ns/item")
}
