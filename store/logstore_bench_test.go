package store

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// BenchmarkOpenLogStore opens a raft log holding as many entries as the
// default snapshot settings leave in it at most (SnapshotThreshold +
// TrailingLogs), each a batch of 64 200-byte writes as the leader proposes
// them under load, and reports what opening it costs a restarting node
// (raft-wal's recovery and kvnode's full read of the log).
func BenchmarkOpenLogStore(b *testing.B) {
	cfg := DefaultConfig()
	entries := cfg.SnapshotThreshold + cfg.TrailingLogs
	data := make([]byte, 64*(200+40))
	for _, name := range []string{RaftLogWAL, RaftLogBolt} {
		b.Run(fmt.Sprintf("%s/entries=%d", name, entries), func(b *testing.B) {
			dir := b.TempDir()
			hlog := newRaftLogger(testLogger(b, "n1"))
			ls, err := openLogStore(name, dir, hlog)
			if err != nil {
				b.Fatal(err)
			}
			var batch []*raft.Log
			for i := uint64(1); i <= entries; i++ {
				batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data})
				if len(batch) == 256 || i == entries {
					if err := ls.log.StoreLogs(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if err := ls.closer.Close(); err != nil {
				b.Fatal(err)
			}
			b.Run("open", func(b *testing.B) { benchOpen(b, name, dir, hlog) })
			// One read of every entry on a store already open: what a
			// full check of the log at startup costs (kvnode does one for
			// wal logs).
			b.Run("read-all", func(b *testing.B) {
				ls, err := openLogStore(name, dir, hlog)
				if err != nil {
					b.Fatal(err)
				}
				defer ls.closer.Close()
				b.ResetTimer()
				for range b.N {
					var l raft.Log
					for i := uint64(1); i <= entries; i++ {
						if err := ls.log.GetLog(i, &l); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		})
	}
}

func benchOpen(b *testing.B, name, dir string, hlog hclog.Logger) {
	for range b.N {
		ls, err := openLogStore(name, dir, hlog)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := ls.closer.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
