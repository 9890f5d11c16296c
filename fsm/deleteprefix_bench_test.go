package fsm

import (
	"fmt"
	"testing"
)

// BenchmarkDeletePrefixChunk measures applying one bulk delete chunk of 1000
// keys (the store's default) out of a prefix of 100,000: the time one entry
// holds the write lock. Compare BenchmarkDeletePrefixWhole, the single entry
// a whole-prefix delete used to be.
//
//	go test ./fsm -run '^$' -bench 'DeletePrefix' -benchtime 20x
func BenchmarkDeletePrefixChunk(b *testing.B) {
	benchDeletePrefix(b, func(idx uint64) Command {
		return Command{Op: OpDeletePrefixChunk, Key: "p/", Limit: 1000, Now: 1}
	})
}

func BenchmarkDeletePrefixWhole(b *testing.B) {
	benchDeletePrefix(b, func(idx uint64) Command {
		return Command{Op: OpDeletePrefix, Key: "p/", Now: 1}
	})
}

func benchDeletePrefix(b *testing.B, cmd func(idx uint64) Command) {
	const keys = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := New()
		idx := uint64(1)
		for k := range keys {
			f.Apply(cmdLog(idx, setCmd(fmt.Sprintf("p/%07d", k), `{"s":"session"}`, 0, 1)))
			idx++
		}
		l := cmdLog(idx+1, cmd(idx+1))
		b.StartTimer()
		f.Apply(l)
	}
}
