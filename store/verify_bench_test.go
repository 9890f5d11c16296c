package store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// BenchmarkStartupVerify1M times the checks a node runs on its data dir
// before raft starts (verify.go), at the one-million-key data set: the
// newest snapshot's CRC-64 (verifySnapshots) and every log entry's CRC-32C
// (verifyLog) of a full log (SnapshotThreshold+TrailingLogs entries of the
// default config, one 200-byte write each), for each log store.
//
//	go test ./store -run '^$' -bench StartupVerify1M -benchtime 3x
func BenchmarkStartupVerify1M(b *testing.B) {
	dir := b.TempDir()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	{
		f := fsm.New()
		const keys = 1_000_000
		logs := make([]*raft.Log, 0, 256)
		for i := range keys {
			val := fmt.Appendf(nil, `{"id":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), 180))
			cmd := fsm.Command{Op: fsm.OpSet, Key: fmt.Sprintf("session-%07d", i), Value: val, Now: 1_700_000_000_000}
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: cmd.Encode()})
			if len(logs) == cap(logs) || i == keys-1 {
				f.ApplyBatch(logs)
				logs = logs[:0]
			}
		}
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		sink, err := snaps.Create(raft.SnapshotVersionMax, keys, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
	}
	snapDir := filepath.Join(dir, "snapshots")
	entries := DefaultConfig().SnapshotThreshold + DefaultConfig().TrailingLogs
	for _, name := range []string{RaftLogBolt, RaftLogWAL} {
		raftDir := filepath.Join(dir, name)
		if err := os.MkdirAll(raftDir, 0o700); err != nil {
			b.Fatal(err)
		}
		ls, err := openLogStore(name, raftDir, newRaftLogger(testLogger(b, "bench")))
		if err != nil {
			b.Fatal(err)
		}
		sumLog, _, err := withChecksums(raftDir, ls)
		if err != nil {
			b.Fatal(err)
		}
		var batch []*raft.Log
		for i := uint64(1); i <= entries; i++ {
			cmd := fsm.Command{Op: fsm.OpSet, Key: fmt.Sprintf("session-%07d", i), Value: bytes.Repeat([]byte("1"), 200), Now: 1_700_000_000_000}
			batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: cmd.Encode()})
			if len(batch) == 256 || i == entries {
				if err := sumLog.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		b.Run("log-"+name, func(b *testing.B) {
			for b.Loop() {
				if err := verifyLog(sumLog, name); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(entries), "entries")
		})
		ls.closer.Close()
	}
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			if err := verifySnapshots(snapDir); err != nil {
				b.Fatal(err)
			}
		}
		metas, _ := snaps.List()
		b.SetBytes(metas[0].Size)
	})
}

// BenchmarkChecksumLogCPU is the CPU the checksums add to the log path, on
// an in-memory store so that no disk time hides it: storing and reading one
// entry with a 256-byte command, plain and through checksumLog.
//
//	go test ./store -run '^$' -bench ChecksumLogCPU
func BenchmarkChecksumLogCPU(b *testing.B) {
	cmd := fsm.Command{Op: fsm.OpSet, Key: "session-0000001", Value: bytes.Repeat([]byte("1"), 256), Now: 1_700_000_000_000}
	data := cmd.Encode()
	for _, tc := range []struct {
		name string
		wrap func(raft.LogStore) raft.LogStore
	}{
		{"plain", func(s raft.LogStore) raft.LogStore { return s }},
		{"checksummed", func(s raft.LogStore) raft.LogStore { return &checksumLog{LogStore: s, from: 1, file: "bench"} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.wrap(raft.NewInmemStore())
			var l raft.Log
			i := uint64(0)
			for b.Loop() {
				i++
				if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
					b.Fatal(err)
				}
				if err := s.GetLog(i, &l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
