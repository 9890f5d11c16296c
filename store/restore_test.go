package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// The online restore replaces the dataset on every node of a live cluster:
// identical state everywhere, the backup's values and absolute expiries,
// every key at the commit's version, keys written before it gone, keys that
// expired since the backup invisible. The backup comes from another cluster,
// so it is refused (nothing changed) until forced, and the cluster keeps its
// own id.
func TestOnlineRestoreReplacesDataOnEveryNode(t *testing.T) {
	src := newTestCluster(t, 1, nil)
	sl := src.leader()
	for i := 0; i < 50; i++ {
		mustSet(t, sl, fmt.Sprintf("src-%02d", i), fmt.Sprintf(`{"n":%d}`, i), time.Hour)
	}
	short := mustSet(t, sl, "short-lived", `"bye"`, 300*time.Millisecond)
	file, info := takeBackup(t, sl, Linearizable)
	want := map[string]Item{}
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("src-%02d", i)
		want[k] = mustGet(t, sl, k)
	}
	src.nodes[0].stop()

	c := newTestCluster(t, 3, nil)
	l := c.leader()
	for i := 0; i < 20; i++ {
		mustSet(t, c.nodes[i%3], fmt.Sprintf("old-%02d", i), `"old"`, 0)
	}
	waitFor(t, 10*time.Second, "short-lived key to expire", func() bool {
		return time.Now().After(short.ExpiresAt)
	})
	f := c.followers(l)[0]
	ownID, hash := l.store.ClusterID(), l.store.StateHash()
	if info.ClusterID == "" || ownID == "" || info.ClusterID == ownID {
		t.Fatalf("cluster ids: backup %q, cluster %q; want two different ids", info.ClusterID, ownID)
	}
	if _, err := f.store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(file), RestoreOptions{}); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("restore of another cluster's backup: %v, want ErrClusterMismatch", err)
	}
	if l.store.StateHash() != hash {
		t.Fatal("a refused restore changed the state")
	}
	res, err := f.store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(file), RestoreOptions{Force: true})
	if err != nil {
		t.Fatalf("forced restore via follower: %v", err)
	}
	if !res.Forced || res.Backup.ClusterID != info.ClusterID {
		t.Fatalf("forced restore result %+v", res)
	}
	for _, nd := range c.nodes {
		if id := nd.store.ClusterID(); id != ownID {
			t.Fatalf("%s: cluster id %q after restore, want the cluster's own %q", nd.id, id, ownID)
		}
	}
	if res.Backup.SHA256 != info.SHA256 || res.Entries != 51 || res.Index == 0 {
		t.Fatalf("restore result %+v", res)
	}
	waitFor(t, 10*time.Second, "identical state on every node", func() bool {
		h := c.nodes[0].store.StateHash()
		return c.nodes[1].store.StateHash() == h && c.nodes[2].store.StateHash() == h
	})
	for _, nd := range c.nodes {
		for k, w := range want {
			got := mustGet(t, nd, k)
			if !bytes.Equal(got.Value, w.Value) || !got.ExpiresAt.Equal(w.ExpiresAt) || got.Version != res.Index {
				t.Fatalf("%s: %s = %+v, want value %s expiry %v version %d", nd.id, k, got, w.Value, w.ExpiresAt, res.Index)
			}
		}
		for _, k := range []string{"old-00", "short-lived"} {
			if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), k, Linearizable); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: %s after restore: %v", nd.id, k, err)
			}
		}
		if nd.store.fsm.StagedRestoreBytes() != 0 {
			t.Fatalf("%s kept staged restore data", nd.id)
		}
	}
	// Writes continue after the restore with later versions; the expired key
	// is physically removed by the leader's expiry loop.
	if w := mustSet(t, f, "after", `1`, 0); w.Version <= res.Index {
		t.Fatalf("write after restore at version %d <= %d", w.Version, res.Index)
	}
	waitFor(t, 10*time.Second, "the expired key's removal", func() bool {
		for _, nd := range c.nodes {
			if nd.store.fsm.Len() != 51 { // 50 restored + "after"
				return false
			}
		}
		return true
	})
}

func TestOnlineRestoreRejectsDamagedBackupWithoutChange(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	for i := 0; i < 10; i++ {
		mustSet(t, l, fmt.Sprintf("k%d", i), `"v"`, 0)
	}
	file, _ := takeBackup(t, l, Linearizable)
	mustSet(t, l, "later", `1`, 0)
	waitFor(t, 10*time.Second, "replicas converge", func() bool {
		h := c.nodes[0].store.StateHash()
		return c.nodes[1].store.StateHash() == h && c.nodes[2].store.StateHash() == h
	})
	hash, applied := l.store.StateHash(), l.store.AppliedIndex()
	for name, bad := range map[string][]byte{
		"truncated": file[:len(file)-1],
		"half":      file[:len(file)/2],
		"corrupt":   append(append(bytes.Clone(file[:80]), file[80]^4), file[81:]...),
		"garbage":   bytes.Repeat([]byte{0xff}, 5000),
		"empty":     nil,
	} {
		for _, nd := range c.nodes {
			if _, err := nd.store.Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(bad), RestoreOptions{Force: true}); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("%s via %s: %v, want ErrBadBackup", name, nd.id, err)
			}
		}
	}
	for _, nd := range c.nodes {
		if nd.store.StateHash() != hash || nd.store.AppliedIndex() != applied {
			t.Fatalf("%s changed after rejected restores (applied %d -> %d)", nd.id, applied, nd.store.AppliedIndex())
		}
	}
}

// TestBackupRestore100kKeysFigures measures an online restore of 100k keys
// into a 3-node cluster and a linearizable backup from a follower, and logs
// the figures (go test ./store -run 100k -v).
func TestBackupRestore100kKeysFigures(t *testing.T) {
	if testing.Short() || raceDetector {
		t.Skip("a timing measurement: meaningless with -race or -short")
	}
	gen := fsm.New()
	const n = 100_000
	for i := 0; i < n; i++ {
		exp := int64(0)
		if i%3 == 0 {
			exp = time.Now().Add(time.Hour).UnixMilli()
		}
		v := fmt.Sprintf(`{"userId":"usr_%08d","cart":[{"sku":"item_%d","qty":%d}],"seen":1764138600123}`, i, i%97, i%5)
		gen.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand,
			Data: fsm.Command{Op: fsm.OpSet, Key: fmt.Sprintf("session-%08d", i), Value: []byte(v), ExpiresAt: exp, Now: 1}.Encode()})
	}
	bk := gen.Backup()
	var file bytes.Buffer
	if _, err := bk.Stream(&file, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	bk.Release()

	c := newTestCluster(t, 3, nil)
	l := c.leader()
	f := c.followers(l)[0]
	start := time.Now()
	res, err := f.store.Restore(ctxTimeout(t, 2*time.Minute), bytes.NewReader(file.Bytes()), RestoreOptions{Force: true})
	if err != nil || res.Entries != n {
		t.Fatalf("restore: %+v %v", res, err)
	}
	restoreTook := time.Since(start)
	waitFor(t, 30*time.Second, "identical state on every node", func() bool {
		h := c.nodes[0].store.StateHash()
		return c.nodes[1].store.StateHash() == h && c.nodes[2].store.StateHash() == h
	})
	start = time.Now()
	out, info := takeBackup(t, f, Linearizable)
	backupTook := time.Since(start)
	if info.Entries != n || int64(len(out)) != info.Size {
		t.Fatalf("backup %+v", info)
	}
	t.Logf("100k keys: backup file %d bytes (%.1f MiB); online restore via a follower (%d chunks of %d bytes) %v; linearizable backup from a follower %v",
		info.Size, float64(info.Size)/(1<<20), (file.Len()+RestoreChunkBytes-1)/RestoreChunkBytes, RestoreChunkBytes, restoreTook.Round(time.Millisecond), backupTook.Round(time.Millisecond))
}

// TestOnlineRestoreOfOwnBackupNeedsNoForce: a backup restores into the
// cluster it came from without force; one that names no cluster (taken
// before the cluster had an id, like a file from an older version) needs it.
func TestOnlineRestoreOfOwnBackupNeedsNoForce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	mustSet(t, l, "k", `"v1"`, 0)
	file, info := takeBackup(t, l, Linearizable)
	if info.ClusterID != l.store.ClusterID() || info.ClusterID == "" {
		t.Fatalf("backup cluster %q, cluster %q", info.ClusterID, l.store.ClusterID())
	}
	mustSet(t, l, "k", `"v2"`, 0)
	res, err := c.followers(l)[0].store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(file), RestoreOptions{})
	if err != nil || res.Forced {
		t.Fatalf("restore of the cluster's own backup: %+v, %v", res, err)
	}
	if got := mustGet(t, l, "k"); string(got.Value) != `"v1"` {
		t.Fatalf("k = %s after restore", got.Value)
	}

	anon := fsm.New()
	bk := anon.Backup()
	var old bytes.Buffer
	if _, err := bk.Stream(&old, 1); err != nil {
		t.Fatal(err)
	}
	bk.Release()
	if _, err := l.store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(old.Bytes()), RestoreOptions{}); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("backup without a cluster id: %v, want ErrClusterMismatch", err)
	}
	if _, err := l.store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(old.Bytes()), RestoreOptions{Force: true}); err != nil {
		t.Fatalf("forced restore of a backup without a cluster id: %v", err)
	}
}

// TestOneRestoreAtATime: a restore is refused with ErrRestoreInProgress while
// another runs on the same node (still uploading) or is staged elsewhere in
// the cluster; nothing changes, and the refused one succeeds afterwards.
func TestOneRestoreAtATime(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	mustSet(t, l, "k", `"v1"`, 0)
	file, _ := takeBackup(t, l, Linearizable)
	f := c.followers(l)[0]

	// Same node: the first restore is still reading its upload.
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := f.store.Restore(ctxTimeout(t, 30*time.Second), pr, RestoreOptions{})
		first <- err
	}()
	waitFor(t, 10*time.Second, "the first restore to start", func() bool { return f.store.restoring.Load() })
	if _, err := f.store.Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(file), RestoreOptions{}); !errors.Is(err, ErrRestoreInProgress) {
		t.Fatalf("second restore on the same node: %v, want ErrRestoreInProgress", err)
	}
	pw.CloseWithError(errors.New("upload abandoned"))
	if err := <-first; err == nil {
		t.Fatal("the abandoned upload was restored")
	}

	// Another node: a restore is staged in the cluster (its proposer is
	// elsewhere and still sending chunks).
	staged, err := l.store.proposeRestore(ctxTimeout(t, 10*time.Second), fsm.Command{Op: fsm.OpRestoreChunk, RestoreID: 99, RestoreSeq: 0, RestoreData: []byte("partial")})
	if err != nil || !staged.OK {
		t.Fatalf("staging a chunk: %+v %v", staged, err)
	}
	for _, nd := range c.nodes {
		if _, err := nd.store.Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(file), RestoreOptions{}); !errors.Is(err, ErrRestoreInProgress) {
			t.Fatalf("restore via %s while another is staged: %v, want ErrRestoreInProgress", nd.id, err)
		}
	}
	if got := l.store.fsm.StagedRestoreBytes(); got != len("partial") {
		t.Fatalf("the refused restore touched the staged one: %d bytes staged", got)
	}
	l.store.abortRestore(99)
	waitFor(t, 10*time.Second, "the abort to apply everywhere", func() bool {
		for _, nd := range c.nodes {
			if nd.store.fsm.StagedRestoreBytes() != 0 {
				return false
			}
		}
		return true
	})
	if _, err := f.store.Restore(ctxTimeout(t, 30*time.Second), bytes.NewReader(file), RestoreOptions{}); err != nil {
		t.Fatalf("restore once the other was aborted: %v", err)
	}
}

// TestRestoreResponseCarriesBusy: the forwarding answer round-trips the busy
// flag, and an answer without the flags byte (an older leader) still decodes.
func TestRestoreResponseCarriesBusy(t *testing.T) {
	for _, res := range []fsm.RestoreResult{
		{OK: true, Entries: 7, Revision: 42},
		{Busy: true, Reason: "restore 1f is in progress"},
	} {
		b := encodeRestoreResponse(res, wireError{})
		got, w, err := decodeRestoreResponse(b)
		if err != nil || w != (wireError{}) || got.OK != res.OK || got.Busy != res.Busy || got.Reason != res.Reason || got.Revision != res.Revision || got.Entries != res.Entries {
			t.Fatalf("round trip of %+v: %+v %+v %v", res, got, w, err)
		}
		if got, _, err := decodeRestoreResponse(b[:len(b)-1]); err != nil || got.Busy {
			t.Fatalf("answer without the flags byte: %+v %v", got, err)
		}
	}
	b := encodeRestoreResponse(fsm.RestoreResult{OK: true}, wireError{})
	for _, bad := range [][]byte{append(bytes.Clone(b[:len(b)-1]), 0x80), append(bytes.Clone(b), 0)} {
		if _, _, err := decodeRestoreResponse(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}
