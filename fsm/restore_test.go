package fsm

import (
	"bytes"
	"reflect"
	"testing"
)

// snapshotBody returns the snapshot stream inside a backup of f.
func snapshotBody(t *testing.T, f *FSM) []byte {
	t.Helper()
	file, _ := backupBytes(t, f, 1)
	var body bytes.Buffer
	if _, err := CopyBackupBody(bytes.NewReader(file), &body); err != nil {
		t.Fatal(err)
	}
	return body.Bytes()
}

func chunkCmd(id, seq uint64, data []byte) Command {
	return Command{Op: OpRestoreChunk, RestoreID: id, RestoreSeq: seq, RestoreData: data, Now: 10}
}

func commitCmd(id, chunks uint64) Command {
	return Command{Op: OpRestoreCommit, RestoreID: id, RestoreSeq: chunks, Now: 10}
}

func TestRestoreOpsCodecRoundTrip(t *testing.T) {
	for _, c := range []Command{
		chunkCmd(0xdeadbeef, 0, []byte("abc")),
		chunkCmd(1, 1<<40, nil),
		commitCmd(7, 3),
		{Op: OpRestoreAbort, RestoreID: 9, Now: -5},
	} {
		b := c.Encode()
		if len(b) != c.encodedSize() || b[0] != codecV2 {
			t.Fatalf("%s: %d bytes (size %d), version %d", c.Op, len(b), c.encodedSize(), b[0])
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("%s: Decode = %+v, %v; want %+v", c.Op, got, err, c)
		}
		v1 := append([]byte{codecV1}, b[1:]...)
		if _, err := Decode(v1); err == nil {
			t.Fatalf("%s accepted in a version 1 command", c.Op)
		}
	}
}

// An online restore through the log: chunks staged, then one commit swaps the
// data in on every replica, with every revision set to the commit's index.
// A replica that catches up from a snapshot taken mid-restore ends equal.
func TestOnlineRestoreThroughLog(t *testing.T) {
	src := New()
	apply(t, src, 1, setCmd("a", `"alpha"`, 0, 5))
	apply(t, src, 2, setCmd("b", `"beta"`, 5_000, 5))  // expires at 5000
	apply(t, src, 3, setCmd("c", `"gamma"`, 9_000, 5)) // expires at 9000
	apply(t, src, 4, Command{Op: OpSet, Key: "d", Value: []byte("4"), Now: 5, IdemKey: "k1", Fingerprint: [32]byte{1}})
	body := snapshotBody(t, src)

	a := New()
	apply(t, a, 1, setCmd("old", `"gone after restore"`, 0, 5))
	for i := uint64(2); i < 20; i++ {
		apply(t, a, i, setCmd("x", `1`, 0, 5))
	}
	const id = 0xabc
	third := len(body) / 3
	chunks := [][]byte{body[:third], body[third : 2*third], body[2*third:]}
	idx := uint64(20)
	res := apply(t, a, idx, chunkCmd(id, 0, chunks[0])).(RestoreResult)
	if !res.OK || res.Staged != third {
		t.Fatalf("chunk 0: %+v", res)
	}
	if _, ok := a.Get("old", 6); !ok || a.StagedRestoreBytes() != third {
		t.Fatal("staging a chunk changed the data")
	}
	// Replica b catches up from a snapshot taken between two chunks.
	b := New()
	if err := restoreBytes(b, persist(t, a)); err != nil {
		t.Fatalf("restore mid-restore snapshot: %v", err)
	}
	if b.Hash() != a.Hash() || b.StagedRestoreBytes() != third {
		t.Fatal("snapshot lost the staged restore")
	}
	for _, f := range []*FSM{a, b} {
		for seq, c := range chunks[1:] {
			if res := apply(t, f, idx+1+uint64(seq), chunkCmd(id, uint64(seq+1), c)).(RestoreResult); !res.OK {
				t.Fatalf("chunk %d: %+v", seq+1, res)
			}
		}
		res := apply(t, f, idx+3, commitCmd(id, 3)).(RestoreResult)
		if !res.OK || res.Entries != 4 || res.Revision != idx+3 {
			t.Fatalf("commit: %+v", res)
		}
	}
	if a.Hash() != b.Hash() {
		t.Fatal("replicas differ after the restore")
	}
	if a.StagedRestoreBytes() != 0 {
		t.Fatal("staging not emptied by the commit")
	}
	if _, ok := a.Get("old", 6); ok {
		t.Fatal("a key from before the restore survived it")
	}
	e, ok := a.Get("c", 6)
	if !ok || string(e.Value) != `"gamma"` || e.ExpiresAt != 9_000 || e.Revision != idx+3 {
		t.Fatalf("restored c = %+v %v", e, ok)
	}
	// Absolute expiry: b is expired at 6000 and stays invisible; c is not yet.
	if _, ok := a.Get("b", 6_000); ok {
		t.Fatal("an expired key is visible after the restore")
	}
	if got := a.ExpiredItems(6_000, 10); len(got) != 1 || got[0].Key != "b" || got[0].Revision != idx+3 {
		t.Fatalf("expiry index after restore: %+v", got)
	}
	if a.IdempotencyEntries() != 1 {
		t.Fatal("the backup's idempotency table was not restored")
	}
	if st, want := a.Stats(), src.Stats(); st.Keys != want.Keys || st.ValueBytes != want.ValueBytes {
		t.Fatalf("Stats after the restore = %+v, want the backup's %+v", st, want)
	}
	// Revisions stay at or below the applied index, so a snapshot round-trips.
	c := New()
	if err := restoreBytes(c, persist(t, a)); err != nil || c.Hash() != a.Hash() {
		t.Fatalf("snapshot after restore: %v", err)
	}
}

func TestOnlineRestoreFailuresChangeNothing(t *testing.T) {
	body := snapshotBody(t, populated(t))
	f := New()
	apply(t, f, 1, setCmd("keep", `1`, 0, 10)) // at the restore commands' time: they move no clock
	before, beforeData := f.Hash(), f.DataHash()
	fails := func(index uint64, c Command) {
		t.Helper()
		res := apply(t, f, index, c).(RestoreResult)
		if res.OK || res.Reason == "" {
			t.Fatalf("%s %+v: %+v, want a failure", c.Op, c, res)
		}
	}
	fails(2, chunkCmd(5, 1, body)) // no restore staged
	fails(3, commitCmd(5, 1))      // nothing to commit
	fails(4, chunkCmd(0, 0, body)) // id 0 is reserved
	apply(t, f, 5, chunkCmd(5, 0, body[:10]))
	fails(6, chunkCmd(5, 2, body[10:])) // gap
	fails(7, chunkCmd(6, 1, body[10:])) // another id
	fails(8, commitCmd(5, 2))           // wrong chunk count
	if f.StagedRestoreBytes() != 10 {
		t.Fatal("a failed chunk changed the staging area")
	}
	// Committing a truncated stream fails and leaves the data alone.
	fails(9, commitCmd(5, 1))
	if f.Hash() != before || f.StagedRestoreBytes() != 0 {
		t.Fatal("a failed commit changed the data or kept the staging")
	}
	// One restore at a time: while restore 7 is active (its last chunk is
	// younger than RestoreAbandonedMs in command time), another is refused
	// as busy; once 7 is abandoned, a new restore replaces it. Abort drops it.
	apply(t, f, 10, chunkCmd(7, 0, body[:10]))
	busy := chunkCmd(8, 0, body)
	busy.Now = 10 + RestoreAbandonedMs - 1
	if res := apply(t, f, 11, busy).(RestoreResult); res.OK || !res.Busy || f.StagedRestoreBytes() != 10 {
		t.Fatalf("second restore while one is active: %+v, staged %d", res, f.StagedRestoreBytes())
	}
	late := chunkCmd(8, 0, body)
	late.Now = 10 + RestoreAbandonedMs
	if res := apply(t, f, 12, late).(RestoreResult); !res.OK {
		t.Fatalf("restore after the staged one was abandoned: %+v", res)
	}
	fails(13, commitCmd(7, 1))
	if res := apply(t, f, 14, Command{Op: OpRestoreAbort, RestoreID: 8}).(RestoreResult); !res.OK {
		t.Fatalf("abort: %+v", res)
	}
	// The later chunks moved command time forward (part of Hash), so only
	// the data and the staging area are compared here.
	if f.DataHash() != beforeData || f.StagedRestoreBytes() != 0 {
		t.Fatal("abort left state behind")
	}
}
