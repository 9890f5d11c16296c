package fsm

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/hashicorp/raft"
)

// The files testdata/compat-log.bin and compat-snapshot.bin were written by
// the build before commands had typed metadata and restore fields (main at
// b35429d): a log of every op, cluster metadata and an online restore
// included (entries: uvarint index, uvarint length, the encoded command),
// and the snapshot of the state it leaves, a restore staged but not
// committed included. compatHash is that build's Hash of that state.
const compatHash = "02b1f0b049c2beb57ea11cd8ddbd43fc3e2e25412adb523c9c6d9b906d6cf192"

// TestOldLogAndSnapshotDecode: this build decodes the old log into the typed
// fields, encodes every command to the same bytes, and reaches the old
// build's state from the log and from the snapshot alike.
func TestOldLogAndSnapshotDecode(t *testing.T) {
	raw, err := os.ReadFile("testdata/compat-log.bin")
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	seen := map[Op]bool{}
	for len(raw) > 0 {
		idx, n := binary.Uvarint(raw)
		size, m := binary.Uvarint(raw[max(n, 0):])
		if n <= 0 || m <= 0 || uint64(len(raw)-n-m) < size {
			t.Fatalf("corrupt fixture at %d bytes from the end", len(raw))
		}
		b := raw[n+m : n+m+int(size)]
		raw = raw[n+m+int(size):]
		c, err := Decode(b)
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if again := c.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("entry %d (%s) re-encodes as %x, was %x", idx, c.Op, again, b)
		}
		switch c.Op {
		case OpNodeAddr:
			if c.NodeID == "" || c.Key != "" || c.Value != nil {
				t.Fatalf("entry %d: node-addr decoded as %+v", idx, c)
			}
		case OpClusterID:
			if c.ClusterID != "c-7f3a9e" || c.Value != nil {
				t.Fatalf("entry %d: cluster-id decoded as %+v", idx, c)
			}
		case OpRestoreChunk:
			if len(c.RestoreData) == 0 || c.Value != nil {
				t.Fatalf("entry %d: restore chunk decoded as %+v", idx, c)
			}
		}
		seen[c.Op] = true
		f.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b})
	}
	for _, op := range []Op{OpSet, OpDelete, OpExpire, OpBarrier, OpTouch, OpIncr, OpDeletePrefix, OpBatch, OpDeletePrefixChunk,
		OpRestoreChunk, OpRestoreCommit, OpRestoreAbort, OpNodeAddr, OpClusterID} {
		if !seen[op] {
			t.Errorf("the fixture log has no %s command", op)
		}
	}
	if got := f.Hash(); got != compatHash {
		t.Fatalf("the old log applied to state %s, the old build reached %s", got, compatHash)
	}
	if a, _ := f.NodeAddr("n2"); a != "https://10.0.0.2:8080" || f.ClusterID() != "c-7f3a9e" || f.StagedRestoreBytes() == 0 {
		t.Fatalf("metadata: n2 at %q, cluster %q, %d bytes staged", a, f.ClusterID(), f.StagedRestoreBytes())
	}
	if _, ok := f.NodeAddr("n3"); ok {
		t.Fatal("n3's address was forgotten by the log but is recorded")
	}

	snap, err := os.ReadFile("testdata/compat-snapshot.bin")
	if err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := restoreBytes(r, snap); err != nil {
		t.Fatalf("restore the old snapshot: %v", err)
	}
	if got := r.Hash(); got != compatHash {
		t.Fatalf("the old snapshot restored to state %s, want %s", got, compatHash)
	}
	if !bytes.Equal(persist(t, r), snap) {
		t.Fatal("the restored old snapshot persists to other bytes")
	}
}
