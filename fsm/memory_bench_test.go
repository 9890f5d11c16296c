package fsm

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The memory benchmarks model the one-million-key data set: keys named as kvbench names
// them ("session-" and six digits), 200-byte JSON values, every key with a TTL
// (kvbench PUTs with ttlSeconds), applied through ApplyBatch as raft delivers
// them. They report the live heap per key after a full GC; run them once:
//
//	go test ./fsm -run '^$' -bench 'MemoryPerKey|Restore1M' -benchtime 1x
//
// MEMKEYS-sized runs are slow (seconds per million keys), so the key count is
// fixed at the target's one million.
const memKeys = 1_000_000

func memKey(i int) string { return fmt.Sprintf("session-%06d", i) }

// memValue is a 200-byte JSON object, as kvbench sends.
func memValue(i int) []byte {
	v := fmt.Appendf(nil, `{"id":%d,"pad":"`, i)
	v = append(v, bytes.Repeat([]byte("x"), 200-len(v)-2)...)
	return append(v, `"}`...)
}

// memFSM applies n sets in batches of 256, keys in a scrambled order (writes
// arrive in no particular key order), every one expiring.
func memFSM(b *testing.B, n int) *FSM {
	b.Helper()
	f := New()
	logs := make([]*raft.Log, 0, 256)
	for i := range n {
		k := (i * 7919) % n // 7919 is prime and does not divide n: a permutation
		logs = append(logs, cmdLog(uint64(i+1), Command{Op: OpSet, Key: memKey(k), Value: memValue(k),
			Now: 1_700_000_000_000, ExpiresAt: 1_700_003_600_000 + int64(i)}))
		if len(logs) == cap(logs) || i == n-1 {
			f.ApplyBatch(logs)
			logs = logs[:0]
		}
	}
	return f
}

// liveHeap returns the heap in use after two full collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerKey reports the live heap per key of a one-million-key
// state built by applying writes: heap-B/key for the whole FSM.
func BenchmarkMemoryPerKey(b *testing.B) {
	for b.Loop() {
		before := liveHeap()
		f := memFSM(b, memKeys)
		after := liveHeap()
		b.ReportMetric(float64(after-before)/memKeys, "heap-B/key")
		runtime.KeepAlive(f)
	}
}

// BenchmarkRestore1M restores a snapshot of the one-million-key state into an
// empty FSM (what a restarting node does before it serves reads): ns/op is
// the restore time, heap-B/key the live heap of the restored state.
func BenchmarkRestore1M(b *testing.B) {
	var sink memSink
	{
		f := memFSM(b, memKeys)
		snap, _ := f.Snapshot()
		if err := snap.Persist(&sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
	}
	data := sink.Bytes()
	b.SetBytes(int64(len(data)))
	var perKey float64
	for b.Loop() {
		b.StopTimer()
		before := liveHeap()
		dst := New()
		b.StartTimer()
		if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		perKey = float64(liveHeap()-before) / memKeys
		runtime.KeepAlive(dst)
		b.StartTimer()
	}
	b.ReportMetric(perKey, "heap-B/key")
}

// BenchmarkGCMark1M times full collections (runtime.GC: mark the whole
// live heap, then sweep) with the one-million-key state live: the work every
// collection of a node at that size pays, whatever its garbage. cpu-ms/gc is
// the process's CPU time per collection (user + system, getrusage), which a
// loaded machine disturbs far less than ns/op, the wall time:
//
//	go test ./fsm -run '^$' -bench GCMark1M -benchtime 20x
func BenchmarkGCMark1M(b *testing.B) {
	f := memFSM(b, memKeys)
	runtime.GC()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/1e6/float64(b.N), "cpu-ms/gc")
	runtime.KeepAlive(f)
}

// processCPU is the process's user + system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
