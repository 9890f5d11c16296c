package fsm

import (
	"bytes"
	"fmt"
)

// Online restore replaces the whole state through the log, so every replica
// does it at the same index. A backup can be far larger than a sensible raft
// entry, so the proposer sends its snapshot stream in chunks
// (OpRestoreChunk), each appended to a staging area, then one OpRestoreCommit
// decodes the staged stream and swaps it in. The staging area is replicated
// state: it is in snapshots (format version 3) and in Hash, so a replica that
// catches up from a snapshot taken between two chunks stages exactly what the
// others staged.
//
// One restore is staged at a time, cluster-wide: chunk 0 of a new restore is
// refused (RestoreResult.Busy) while another restore's last chunk is less than
// RestoreAbandonedMs old at the new command's Now, and replaces a staged
// restore older than that (its proposer died or gave up without aborting).
// Both sides of the comparison are command times, so every replica decides
// alike. A chunk or commit that does not continue the staged restore (a
// different id, or a sequence gap) fails as a value and changes nothing, so a
// proposer that lost track (leader change, retry) sees the failure and starts
// over with a new id.

// restoreStaging is the stream of the restore in progress. data[:len(data)] is
// never written again after a chunk is applied (later chunks append beyond it,
// a new restore allocates afresh), so a snapshot may share the slice.
type restoreStaging struct {
	id        uint64 // 0: nothing staged
	next      uint64 // the chunk sequence number expected next
	updatedAt int64  // Now of the last chunk applied (Unix ms)
	data      []byte
}

// RestoreAbandonedMs is how long (in command time) a staged restore keeps
// others out after its last chunk. A proposer sends the next chunk as soon as
// the previous one commits, so a gap this long means it is gone.
const RestoreAbandonedMs = 30_000

// RestoreResult is the outcome of OpRestoreChunk, OpRestoreCommit and
// OpRestoreAbort.
type RestoreResult struct {
	OK bool
	// Reason says why a command failed (OK false); nothing changed.
	Reason string
	// Busy (OK false, chunk 0 only): another restore is staged and active.
	Busy bool
	// Staged is the size of the staged stream after a chunk.
	Staged int
	// Entries (commit): the entries now stored, expired ones included.
	Entries int
	// Revision (commit): the revision of every restored entry, which is the
	// commit's log index: the restore is the write that last changed them.
	Revision uint64
}

func (f *FSM) restoreChunk(cmd *Command) RestoreResult {
	switch st := &f.staging; {
	case cmd.RestoreID == 0:
		return RestoreResult{Reason: "restore id 0 is reserved"}
	case cmd.RestoreSeq == 0 && st.id != 0 && st.id != cmd.RestoreID && cmd.Now-st.updatedAt < RestoreAbandonedMs:
		return RestoreResult{Busy: true, Reason: fmt.Sprintf("restore %x is in progress (%d chunks staged); one restore at a time", st.id, st.next)}
	case cmd.RestoreSeq == 0:
		f.staging = restoreStaging{id: cmd.RestoreID, next: 1, updatedAt: cmd.Now, data: bytes.Clone(cmd.RestoreData)}
	case st.id != cmd.RestoreID:
		return RestoreResult{Reason: fmt.Sprintf("restore %x is not staged (another restore replaced it, or it was aborted)", cmd.RestoreID)}
	case st.next != cmd.RestoreSeq:
		return RestoreResult{Reason: fmt.Sprintf("restore %x: chunk %d out of sequence, expected %d", cmd.RestoreID, cmd.RestoreSeq, st.next)}
	default:
		st.data = append(st.data, cmd.RestoreData...)
		st.next++
		st.updatedAt = cmd.Now
	}
	return RestoreResult{OK: true, Staged: len(f.staging.data)}
}

// restoreCommit decodes the staged stream (a snapshot stream, verified again
// here: magic, order, CRC-32C) and, if it is intact, replaces data, expiry
// index and idempotency table with it. Every entry gets revision index. The
// cluster's metadata (node addresses, cluster id) stays: the backup's
// describe the cluster it came from. The staging area is emptied either way.
func (f *FSM) restoreCommit(index uint64, cmd *Command) RestoreResult {
	st := f.staging
	switch {
	case st.id == 0 || st.id != cmd.RestoreID:
		return RestoreResult{Reason: fmt.Sprintf("restore %x is not staged (another restore replaced it, or it was aborted)", cmd.RestoreID)}
	case st.next != cmd.RestoreSeq:
		return RestoreResult{Reason: fmt.Sprintf("restore %x: commit after %d chunks, but %d are staged", cmd.RestoreID, cmd.RestoreSeq, st.next)}
	}
	f.staging = restoreStaging{}
	r, err := readSnapshot(bytes.NewReader(st.data))
	if err != nil {
		return RestoreResult{Reason: fmt.Sprintf("restore %x: staged data is not a valid snapshot: %v", cmd.RestoreID, err)}
	}
	if r.staging.id != 0 {
		return RestoreResult{Reason: fmt.Sprintf("restore %x: staged data itself holds a restore in progress", cmd.RestoreID)}
	}
	load := newSortedLoader()
	var valueBytes, keyBytes int64
	r.data.Scan(func(it item) bool {
		it.Revision = index
		valueBytes += int64(len(it.value()))
		keyBytes += int64(len(it.key()))
		load.add(it)
		return true
	})
	data := load.finish()
	f.data, f.expiry = data, r.expiry
	f.idem, f.idemAge, f.idemBytes = r.idem, r.idemAge, r.idemBytes
	// lastNow stays: the commit is a command like any other, at its own time
	// (already applied by advanceTime); the backup's clock does not rewind it.
	f.stats.valueBytes, f.stats.keyBytes = valueBytes, keyBytes
	f.emit(Change{Type: ChangeReset, Version: index, Index: index})
	return RestoreResult{OK: true, Entries: data.Len(), Revision: index}
}

func (f *FSM) restoreAbort(cmd *Command) RestoreResult {
	if f.staging.id == 0 || f.staging.id != cmd.RestoreID {
		return RestoreResult{Reason: fmt.Sprintf("restore %x is not staged", cmd.RestoreID)}
	}
	f.staging = restoreStaging{}
	return RestoreResult{OK: true}
}

// StagedRestoreBytes is the size of the restore stream staged but not yet
// committed or aborted (0 when none).
func (f *FSM) StagedRestoreBytes() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.staging.data)
}
