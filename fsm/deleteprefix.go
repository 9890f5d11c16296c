package fsm

import "strings"

// Chunked bulk delete (DESIGN.md, "Bulk delete in chunks"). The leader turns
// one DELETE /kv/items?prefix=P into a sequence of OpDeletePrefixChunk
// entries, each removing at most Limit entries, so no entry holds the write
// lock for long whatever the prefix matches. The first chunk's log index is
// the bulk delete's bound: every chunk removes only entries last written
// before it, so a key written while the delete runs survives it, and a
// retry never deletes keys that did not exist when the original began.

// chunkVisitFactor bounds the entries one chunk looks at (removed or skipped
// as newer than the bound) to this multiple of its Limit.
const chunkVisitFactor = 4

// firstDeletePrefixChunk applies a bulk delete's first chunk: its own index
// is the bound.
func (f *FSM) firstDeletePrefixChunk(index uint64, cmd *Command) DeletePrefixResult {
	r := f.deletePrefixChunk(index, cmd, index)
	r.Revision, r.Bound = index, index
	if cmd.IdemKey != "" {
		// applyCommand records r (Deleted, Revision) under the key.
		r.Recorded, r.Total = true, r.Deleted
	}
	return r
}

// continueDeletePrefix applies a later chunk. With an idempotency key whose
// record belongs to this bulk delete (same fingerprint, same bound, in the
// window) it adds the chunk's count to the recorded total, so every caller
// of the bulk delete, a retry included, ends with the same total.
func (f *FSM) continueDeletePrefix(index uint64, cmd *Command) DeletePrefixResult {
	r := f.deletePrefixChunk(index, cmd, cmd.Bound)
	r.Revision, r.Bound = cmd.Bound, cmd.Bound
	if cmd.IdemKey == "" {
		return r
	}
	e, ok := f.idem.Get(idemEntry{key: cmd.IdemKey})
	if !ok || e.fingerprint != cmd.Fingerprint || idemAged(e.createdAt, cmd.Now) {
		return r
	}
	rec, err := decodeResult(e.result)
	prev, isBulk := rec.(DeletePrefixResult)
	if err != nil || !isBulk || prev.Status != StatusOK || prev.Revision != cmd.Bound {
		return r
	}
	prev.Deleted += r.Deleted
	e.result = encodeResult(prev)
	f.idem.Set(e) // same key and createdAt: the age index is unchanged
	r.Recorded, r.Total = true, prev.Deleted
	return r
}

// replayedDeletePrefix turns a recorded bulk delete result into the answer
// to a first chunk that repeats it: the bulk delete may still be running on
// behalf of the original caller, so the proposer continues from the start of
// the prefix with the recorded bound (chunks delete nothing the original did
// not cover, and add what they delete to the record).
func replayedDeletePrefix(res interface{}) interface{} {
	r, ok := res.(DeletePrefixResult)
	if !ok || r.Status != StatusOK {
		return res
	}
	r.Bound, r.More, r.Replayed = r.Revision, true, true
	r.Recorded, r.Total = true, r.Deleted
	return r
}

// deletePrefixChunk removes up to cmd.Limit entries with prefix cmd.Key and a
// revision below bound, strictly after cmd.After, visiting at most
// chunkVisitFactor*Limit entries, and counts the live ones it removes. The
// chunk's own log index (index) is what its removals are recorded at.
func (f *FSM) deletePrefixChunk(index uint64, cmd *Command, bound uint64) DeletePrefixResult {
	var r DeletePrefixResult
	limit := cmd.Limit
	visits := limit * chunkVisitFactor
	var doomed []item
	var visited uint64
	start := cmd.Key
	if cmd.After > start {
		start = cmd.After
	}
	f.data.Ascend(probe(start), func(it item) bool {
		k := it.key()
		if !strings.HasPrefix(k, cmd.Key) {
			return false
		}
		if k == cmd.After {
			return true
		}
		if uint64(len(doomed)) == limit || visited == visits {
			r.More = true // another matching entry follows
			return false
		}
		visited++
		r.Next = k
		if it.Revision < bound {
			doomed = append(doomed, it)
		}
		return true
	})
	for _, it := range doomed {
		f.remove(index, it.key())
		if !it.Expired(cmd.Now) {
			r.Deleted++
		}
	}
	if !r.More {
		r.Next = ""
	}
	return r
}
