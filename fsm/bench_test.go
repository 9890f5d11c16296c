package fsm

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

const benchKeys = 100_000

func benchKey(i int) string { return fmt.Sprintf("user/%08d", i) }

// benchFSM returns an FSM holding n entries with 200-byte values, a third of
// them expiring.
func benchFSM(b *testing.B, n int) *FSM {
	b.Helper()
	f := New()
	value := bytes.Repeat([]byte("x"), 200)
	logs := make([]*raft.Log, 0, 1024)
	for i := range n {
		var exp int64
		if i%3 == 0 {
			exp = int64(1_700_000_000_000 + i)
		}
		logs = append(logs, cmdLog(uint64(i+1), Command{Op: OpSet, Key: benchKey(i), Value: value, ExpiresAt: exp}))
		if len(logs) == cap(logs) || i == n-1 {
			f.ApplyBatch(logs)
			logs = logs[:0]
		}
	}
	return f
}

// BenchmarkApplyBatchSet: one iteration applies a batch of 64 sets of 200-byte
// values to random keys of a 100k-key store.
func BenchmarkApplyBatchSet(b *testing.B) { benchApplyBatchSet(b, nil) }

// BenchmarkApplyBatchSetObserved is BenchmarkApplyBatchSet with a change
// observer that keeps every change in a ring, as the watch hub does: the
// difference is what recording changes costs the apply path.
func BenchmarkApplyBatchSetObserved(b *testing.B) { benchApplyBatchSet(b, &ringObserver{}) }

type ringObserver struct {
	ring [4096]Change
	n    int
}

func (o *ringObserver) Applied(changes []Change, _ uint64) {
	for _, c := range changes {
		o.ring[o.n%len(o.ring)] = c
		o.n++
	}
}

func benchApplyBatchSet(b *testing.B, o ChangeObserver) {
	const batch = 64
	f := benchFSM(b, benchKeys)
	if o != nil {
		f.SetChangeObserver(o)
	}
	r := rand.New(rand.NewPCG(1, 2))
	value := bytes.Repeat([]byte("y"), 200)
	// Pre-encode a pool of batches; Index is rewritten per iteration.
	pool := make([][]*raft.Log, 64)
	for i := range pool {
		pool[i] = make([]*raft.Log, batch)
		for j := range pool[i] {
			pool[i][j] = cmdLog(0, Command{Op: OpSet, Key: benchKey(r.IntN(benchKeys)), Value: value, ExpiresAt: int64(r.IntN(2)) * 1_800_000_000_000, Now: 1_700_000_000_000})
		}
	}
	idx := uint64(benchKeys)
	b.SetBytes(batch * 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		logs := pool[i%len(pool)]
		for _, l := range logs {
			idx++
			l.Index = idx
		}
		f.ApplyBatch(logs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/set")
}

func BenchmarkGet(b *testing.B) {
	f := benchFSM(b, benchKeys)
	keys := make([]string, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range keys {
		keys[i] = benchKey(r.IntN(benchKeys))
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, ok := f.Get(keys[i%len(keys)], 0); !ok {
				b.Fatal("missing key")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				f.Get(keys[i%len(keys)], 0)
				i++
			}
		})
	})
}

type discardSink struct{ n int64 }

func (s *discardSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *discardSink) Close() error                { return nil }
func (s *discardSink) Cancel() error               { return nil }
func (s *discardSink) ID() string                  { return "discard" }

var _ raft.SnapshotSink = (*discardSink)(nil)

// BenchmarkSnapshotPersist: Snapshot plus Persist of 100k entries with 200-byte
// values to a sink that discards.
func BenchmarkSnapshotPersist(b *testing.B) {
	f := benchFSM(b, benchKeys)
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		sink := &discardSink{}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
		size = sink.n
	}
	b.SetBytes(size)
}

func BenchmarkRestore(b *testing.B) {
	f := benchFSM(b, benchKeys)
	var sink memSink
	snap, _ := f.Snapshot()
	if err := snap.Persist(&sink); err != nil {
		b.Fatal(err)
	}
	data := sink.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	dst := New()
	for b.Loop() {
		if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := Command{Op: OpSet, Key: benchKey(12345), Value: bytes.Repeat([]byte("x"), 200), ExpiresAt: 1_800_000_000_000, Now: 1_700_000_000_000}.Encode()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c := Command{Op: OpSet, Key: benchKey(12345), Value: bytes.Repeat([]byte("x"), 200), ExpiresAt: 1_800_000_000_000, Now: 1_700_000_000_000}
	b.ReportAllocs()
	for b.Loop() {
		c.Encode()
	}
}
