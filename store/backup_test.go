package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// takeBackup streams a backup from nd at level into memory.
func takeBackup(t *testing.T, nd *testNode, level ReadLevel) ([]byte, BackupInfo) {
	t.Helper()
	b, err := nd.store.Backup(ctxTimeout(t, 10*time.Second), level)
	if err != nil {
		t.Fatalf("backup on %s: %v", nd.id, err)
	}
	defer b.Close()
	var buf bytes.Buffer
	info, err := b.Stream(&buf)
	if err != nil {
		t.Fatalf("stream backup: %v", err)
	}
	return buf.Bytes(), info
}

// newSeededCluster starts n nodes whose data dirs are seeded from the same
// backup file, as an operator would with `kvnode restore` on every node.
func newSeededCluster(t *testing.T, n int, file []byte) *testCluster {
	t.Helper()
	c, peers := newListeningCluster(t, "r", n)
	for _, nd := range c.nodes {
		if _, err := SeedFromBackup(bytes.NewReader(file), nd.dataDir, nd.id, peers); err != nil {
			t.Fatalf("seed %s: %v", nd.id, err)
		}
	}
	for _, nd := range c.nodes {
		c.openStore(nd, nil, nil) // no bootstrap list: the seeded snapshot carries the configuration
	}
	return c
}

// populate writes a mix of plain, expiring, idempotent and deleted keys.
func populate(t *testing.T, c *testCluster, n int) {
	t.Helper()
	l := c.leader()
	for i := 0; i < n; i++ {
		nd := c.nodes[i%len(c.nodes)]
		ttl := time.Duration(0)
		if i%3 == 0 {
			ttl = time.Hour
		}
		mustSet(t, nd, fmt.Sprintf("key-%03d", i), fmt.Sprintf(`{"i":%d,"s":"\u00e9"}`, i), ttl)
	}
	if _, err := l.store.Put(ctxTimeout(t, 5*time.Second), "idem", []byte(`1`), 0, false,
		WriteOptions{IdempotencyKey: "op-1", Fingerprint: [32]byte{1}}); err != nil {
		t.Fatalf("idempotent put: %v", err)
	}
	if _, err := l.store.Delete(ctxTimeout(t, 5*time.Second), "key-001"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func TestBackupIsLinearizableOnAnyNode(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	populate(t, c, 30)
	l := c.leader()
	last := mustSet(t, l, "last", `"x"`, 0)
	for _, nd := range c.nodes {
		file, info := takeBackup(t, nd, Linearizable)
		if info.Index < last.Index {
			t.Fatalf("%s: backup at index %d misses the write at %d", nd.id, info.Index, last.Index)
		}
		vi, err := fsm.VerifyBackup(bytes.NewReader(file))
		if err != nil || vi != info {
			t.Fatalf("%s: VerifyBackup = %+v, %v; Stream said %+v", nd.id, vi, err, info)
		}
		if info.Entries != 31 || info.IdemEntries != 1 {
			t.Fatalf("%s: %d entries, %d idempotency entries", nd.id, info.Entries, info.IdemEntries)
		}
	}
	// A stale backup is served by an isolated node from its own state.
	f := c.followers(l)[0]
	c.isolate(f)
	if _, info := takeBackup(t, f, Stale); info.Entries != 31 {
		t.Fatalf("stale backup: %+v", info)
	}
	c.heal()
}

// Backup -> wipe -> restore yields identical data: a new cluster seeded on
// every node from the file has the source's state hash on every node, keeps
// versions and absolute expiries, and continues versions after the backup.
func TestOfflineRestoreRoundTrip(t *testing.T) {
	src := newTestCluster(t, 3, nil)
	populate(t, src, 40)
	sl := src.leader()
	file, info := takeBackup(t, sl, Linearizable)
	// DataHash: the new cluster's own commands (its leader's barrier) move its
	// last command time, which Hash covers and a backup does not carry over.
	wantHash := sl.store.DataHash()
	orig := mustGet(t, sl, "key-003")
	for _, nd := range src.nodes {
		nd.stop() // wipe: the source cluster is gone
	}

	dst := newSeededCluster(t, 3, file)
	l := dst.leader()
	waitFor(t, 10*time.Second, "identical state on every restored node", func() bool {
		for _, nd := range dst.nodes {
			if nd.store.DataHash() != wantHash {
				return false
			}
		}
		return true
	})
	got := mustGet(t, dst.nodes[2], "key-003")
	if string(got.Value) != string(orig.Value) || got.Version != orig.Version || !got.ExpiresAt.Equal(orig.ExpiresAt) {
		t.Fatalf("restored %+v, source %+v", got, orig)
	}
	if _, err := l.store.Get(ctxTimeout(t, 5*time.Second), "key-001", Linearizable); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key after restore: %v", err)
	}
	res := mustSet(t, dst.nodes[1], "after-restore", `true`, 0)
	if res.Version <= info.Index {
		t.Fatalf("first write after restore got version %d, not after the backup's index %d", res.Version, info.Index)
	}
	// The idempotency table came along: the retry answers the original result
	// (created, at a version inside the backup) instead of applying again.
	again, err := l.store.Put(ctxTimeout(t, 5*time.Second), "idem", []byte(`1`), 0, false,
		WriteOptions{IdempotencyKey: "op-1", Fingerprint: [32]byte{1}})
	if err != nil || !again.Created || again.Version > info.Index {
		t.Fatalf("idempotent retry after restore: %+v %v", again, err)
	}
}

func TestSeedRejectsDamagedBackupWithoutChange(t *testing.T) {
	src := newTestCluster(t, 1, nil)
	populate(t, src, 10)
	file, _ := takeBackup(t, src.leader(), Stale)
	peers := []Peer{{ID: "n1", Addr: "127.0.0.1:1"}}
	for name, bad := range map[string][]byte{
		"truncated": file[:len(file)/2],
		"last byte": file[:len(file)-1],
		"corrupt":   append(append(bytes.Clone(file[:100]), file[100]^1), file[101:]...),
		"garbage":   []byte("this is not a backup, it is a grocery list"),
		"empty":     nil,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "api-key"), []byte("k"), 0o600)
		_, err := SeedFromBackup(bytes.NewReader(bad), dir, "n1", peers)
		if !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", name, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s: data dir changed: %v", name, entries)
		}
	}
	// A data dir that already has raft state is refused.
	used := src.nodes[0].dataDir
	before, _ := os.ReadDir(filepath.Join(used, "raft"))
	if _, err := SeedFromBackup(bytes.NewReader(file), used, "n1", peers); err == nil {
		t.Fatal("seeded a data dir that holds raft state")
	}
	if after, _ := os.ReadDir(filepath.Join(used, "raft")); len(after) != len(before) {
		t.Fatalf("raft dir changed: %v -> %v", before, after)
	}
}
