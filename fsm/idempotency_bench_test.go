package fsm

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkIdempotencyTableMemory measures the live heap one dedup entry
// costs, against its accounted size (IdempotencyEntryBytes), for keys as the
// HTTP API stores them: an API key name, NUL, and a UUID. Run it once:
//
//	go test ./fsm -run '^$' -bench IdempotencyTableMemory -benchtime 1x
func BenchmarkIdempotencyTableMemory(b *testing.B) {
	const n = 300_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f := New()
		logs := make([]*raft.Log, 0, 256)
		for i := range n {
			key := fmt.Sprintf("web\x00%08x-%04x-4%03x-8%03x-%012x", i, i%0xffff, i%0xfff, (i*7)%0xfff, i*7919)
			c := Command{Op: OpDelete, Key: "absent", Now: 1_700_000_000_000 + int64(i/100), IdemKey: key, Fingerprint: [FingerprintSize]byte{byte(i)}}
			logs = append(logs, cmdLog(uint64(i+1), c))
			if len(logs) == cap(logs) || i == n-1 {
				f.ApplyBatch(logs)
				logs = logs[:0]
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		u := f.IdempotencyUsage()
		live := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(live/n, "heap-B/entry")
		b.ReportMetric(float64(u.Bytes)/n, "accounted-B/entry")
		runtime.KeepAlive(f)
	}
}
