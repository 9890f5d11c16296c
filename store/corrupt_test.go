package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft-wal/metadb"

	"github.com/quorumkv/quorumkv/transport"
)

// corruptibleNode writes a single-node data dir with the given log store:
// keys, a snapshot, then entries after it (so the log and the newest
// snapshot both hold data), each value unique so a test can find its bytes
// in the files. It returns the stopped node.
func corruptibleNode(t *testing.T, raftLog string) (*testCluster, *testNode) {
	t.Helper()
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.RaftLog = raftLog })
	nd := c.leader()
	for i := range 20 {
		mustSet(t, nd, fmt.Sprintf("snap-%d", i), fmt.Sprintf(`"insnapshot-%04d"`, i), 0)
	}
	if err := nd.store.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := range 20 {
		mustSet(t, nd, fmt.Sprintf("log-%d", i), fmt.Sprintf(`"inlogentry-%04d"`, i), 0)
	}
	nd.stop()
	return c, nd
}

// reopen starts the stopped node's store again and returns Open's error.
func reopen(t *testing.T, nd *testNode, raftLog string) error {
	t.Helper()
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, nd.id)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftLog, cfg.Logger = nd.id, nd.dataDir, raftLog, testLogger(t, nd.id)
	st, err := Open(cfg, mux)
	if err == nil {
		nd.store, nd.mux = st, mux
		return nil
	}
	mux.Close()
	return err
}

// flipAll flips one bit in the byte at offset off from every occurrence of
// marker in the files matched by glob (bbolt may keep stale copies of a
// page, so each copy is hit), and returns how many it changed.
func flipAll(t *testing.T, glob string, marker []byte, off int) int {
	t.Helper()
	files, _ := filepath.Glob(glob)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; {
			j := bytes.Index(b[i:], marker)
			if j < 0 {
				break
			}
			b[i+j+off] ^= 0x04
			n++
			i += j + len(marker)
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// newestSnapshot is the directory of the snapshot raft restores first: the
// highest term, then index (its name is term-index-milliseconds).
func newestSnapshot(t *testing.T, dataDir string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*"))
	var newest string
	var bestTerm, bestIndex uint64
	for _, d := range dirs {
		var term, index, ms uint64
		if strings.HasSuffix(d, ".tmp") {
			continue
		}
		if _, err := fmt.Sscanf(filepath.Base(d), "%d-%d-%d", &term, &index, &ms); err != nil {
			continue
		}
		if newest == "" || term > bestTerm || term == bestTerm && index > bestIndex {
			newest, bestTerm, bestIndex = d, term, index
		}
	}
	if newest == "" {
		t.Fatal("no snapshot")
	}
	return newest
}

// TestCorruptFilesRefuseToStart flips bytes in and truncates each kind of
// file of a stopped node's data dir, with each log store, and checks the
// node refuses to start with an error naming the file, the failed check and
// the recovery.
func TestCorruptFilesRefuseToStart(t *testing.T) {
	type damage struct {
		name string
		do   func(t *testing.T, dataDir string)
		// file and check must appear in the error.
		file, check string
	}
	raftDir := func(d string) string { return filepath.Join(d, "raft") }
	logDamage := map[string][]damage{
		RaftLogBolt: {
			{"entry data flipped", func(t *testing.T, d string) {
				if flipAll(t, filepath.Join(raftDir(d), "raft.db"), []byte("inlogentry-0007"), 3) == 0 {
					t.Fatal("value not found in raft.db")
				}
			}, "raft.db", "raft log entry"},
			{"stable term flipped", func(t *testing.T, d string) {
				if flipAll(t, filepath.Join(raftDir(d), "raft.db"), []byte(sumKeyPrefix+"CurrentTerm"), len(sumKeyPrefix+"CurrentTerm")+7) == 0 {
					t.Fatal("term not found in raft.db")
				}
			}, "raft.db", "stable store key CurrentTerm fails its CRC-32C"},
			{"log file truncated", func(t *testing.T, d string) { truncateHalf(t, filepath.Join(raftDir(d), "raft.db")) }, "raft.db", "truncated"},
		},
		RaftLogWAL: {
			{"entry data flipped", func(t *testing.T, d string) {
				if flipAll(t, filepath.Join(raftDir(d), "wal", "*.wal"), []byte("inlogentry-0007"), 3) == 0 {
					t.Fatal("value not found in the wal segments")
				}
			}, "wal", "raft log entry"},
			{"stable term flipped", func(t *testing.T, d string) {
				if flipAll(t, filepath.Join(raftDir(d), "wal", metadb.FileName), []byte(sumKeyPrefix+"CurrentTerm"), len(sumKeyPrefix+"CurrentTerm")+7) == 0 {
					t.Fatal("term not found in the meta db")
				}
			}, metadb.FileName, "stable store key CurrentTerm fails its CRC-32C"},
			{"meta db truncated", func(t *testing.T, d string) { truncateHalf(t, filepath.Join(raftDir(d), "wal", metadb.FileName)) }, metadb.FileName, ""},
		},
	}
	snapshotDamage := []damage{
		{"snapshot data flipped", func(t *testing.T, d string) {
			if flipAll(t, filepath.Join(newestSnapshot(t, d), "state.bin"), []byte("insnapshot-0007"), 3) == 0 {
				t.Fatal("value not found in the snapshot")
			}
		}, "state.bin", "CRC-64"},
		{"snapshot truncated", func(t *testing.T, d string) { truncateHalf(t, filepath.Join(newestSnapshot(t, d), "state.bin")) }, "state.bin", "truncated"},
		{"snapshot meta truncated", func(t *testing.T, d string) { truncateHalf(t, filepath.Join(newestSnapshot(t, d), "meta.json")) }, "meta.json", "not a valid snapshot meta file"},
		{"checksums marker damaged", func(t *testing.T, d string) {
			if err := os.WriteFile(filepath.Join(raftDir(d), checksumsFile), []byte(`{"format":1,"logFr`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, checksumsFile, "unreadable"},
	}
	for _, raftLog := range []string{RaftLogBolt, RaftLogWAL} {
		for _, dmg := range append(logDamage[raftLog], snapshotDamage...) {
			t.Run(raftLog+"/"+dmg.name, func(t *testing.T) {
				_, nd := corruptibleNode(t, raftLog)
				if err := reopen(t, nd, raftLog); err != nil {
					t.Fatalf("intact data dir refused: %v", err)
				}
				nd.stop()
				dmg.do(t, nd.dataDir)
				err := reopen(t, nd, raftLog)
				if err == nil {
					t.Fatalf("the node started on a data dir with %s", dmg.name)
				}
				msg := err.Error()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(msg, dmg.file) || !strings.Contains(msg, dmg.check) ||
					!strings.Contains(msg, "wipe its data dir") || !strings.Contains(msg, "--join") {
					t.Fatalf("refusal %q: want ErrCorrupt naming %q, %q and the recovery", msg, dmg.file, dmg.check)
				}
				t.Logf("refused: %v", err)
			})
		}
	}
}

// An older data dir, without sums, opens, gets its marker and its stable
// copies, and checks every entry written from then on.
func TestChecksumsAddedToOlderDataDir(t *testing.T) {
	_, nd := corruptibleNode(t, RaftLogBolt)
	// Make it look like a data dir from before: no marker, no stable copies
	// (the entries then carry sums the marker does not promise, which the
	// reader accepts as it accepts any summed entry).
	if err := os.Remove(filepath.Join(nd.dataDir, "raft", checksumsFile)); err != nil {
		t.Fatal(err)
	}
	if err := reopen(t, nd, RaftLogBolt); err != nil {
		t.Fatalf("older data dir refused: %v", err)
	}
	if it := mustGet(t, nd, "log-7"); string(it.Value) != `"inlogentry-0007"` {
		t.Fatalf("log-7 = %s", it.Value)
	}
	last := nd.store.raft.LastIndex()
	nd.stop()
	b, err := os.ReadFile(filepath.Join(nd.dataDir, "raft", checksumsFile))
	var m checksumsMarker
	if err != nil || json.Unmarshal(b, &m) != nil || m.LogFrom < 2 || m.LogFrom > last {
		t.Fatalf("marker = %s, %v; want logFrom after the older entries, at most %d", b, err, last)
	}
	// The copies were added: the next start finds them.
	if err := reopen(t, nd, RaftLogBolt); err != nil {
		t.Fatalf("reopen after the upgrade: %v", err)
	}
}
