package fsm

import (
	"fmt"
	"testing"
)

// chunk is an OpDeletePrefixChunk of prefix p.
func chunk(p string, limit, bound uint64, after string, now int64) Command {
	return Command{Op: OpDeletePrefixChunk, Key: p, Limit: limit, Bound: bound, After: after, Now: now}
}

// runBulkDelete drives chunks as the leader does, from index on, and
// returns the summed count, the last result and the next free index.
func runBulkDelete(t *testing.T, f *FSM, index uint64, first Command) (int, DeletePrefixResult, uint64) {
	t.Helper()
	r := apply(t, f, index, first).(DeletePrefixResult)
	index++
	count := r.Deleted
	c := first
	for steps := 0; r.More; steps++ {
		if steps > 1000 {
			t.Fatal("bulk delete makes no progress")
		}
		c.Bound, c.After = r.Bound, r.Next
		r = apply(t, f, index, c).(DeletePrefixResult)
		index++
		count += r.Deleted
	}
	return count, r, index
}

// TestDeletePrefixChunks: a bulk delete in chunks of 3 removes every key of
// the prefix written before it began, counts only live ones, leaves other
// prefixes alone, never removes more than the limit in one entry, and keeps
// keys written after its first chunk, even when they sort before the
// resume point or fill whole chunks.
func TestDeletePrefixChunks(t *testing.T) {
	f := New()
	idx := uint64(1)
	for i := range 10 {
		apply(t, f, idx, setCmd(fmt.Sprintf("p/%02d", i), "1", 0, 1))
		idx++
	}
	apply(t, f, idx, setCmd("p/05x", "1", 50, 1)) // expires at 50
	idx++
	apply(t, f, idx, setCmd("q/1", "1", 0, 1))
	idx++
	apply(t, f, idx, setCmd("p", "1", 0, 1)) // the prefix itself is a key of it
	idx++

	first := chunk("p", 3, 0, "", 100)
	r := apply(t, f, idx, first).(DeletePrefixResult)
	bound := idx
	idx++
	if r.Bound != bound || r.Revision != bound || !r.More || r.Deleted != 3 || r.Next != "p/01" {
		t.Fatalf("first chunk: %+v", r)
	}
	// Written after the bulk delete began: never removed by it.
	for _, k := range []string{"p/00", "p/00a", "p/09z"} {
		apply(t, f, idx, setCmd(k, "2", 0, 100))
		idx++
	}
	count := r.Deleted
	for r.More {
		before := f.Len()
		c := chunk("p", 3, r.Bound, r.Next, 100)
		r = apply(t, f, idx, c).(DeletePrefixResult)
		idx++
		if removed := before - f.Len(); removed > 3 {
			t.Fatalf("one chunk removed %d entries, limit 3", removed)
		}
		count += r.Deleted
	}
	if count != 11 { // p, p/00..p/09; p/05x had expired
		t.Fatalf("deleted %d live keys, want 11", count)
	}
	var left []string
	for _, e := range f.listAll() {
		left = append(left, e)
	}
	if fmt.Sprint(left) != "[p/00 p/00a p/09z q/1]" {
		t.Fatalf("left %v, want the keys written after the bulk delete began and q/1", left)
	}
}

// listAll returns every stored key, expired or not.
func (f *FSM) listAll() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var keys []string
	f.data.Scan(func(it item) bool {
		keys = append(keys, it.key())
		return true
	})
	return keys
}

// TestDeletePrefixChunkSkipsBounded: a chunk that finds only newer keys
// stops after visiting chunkVisitFactor*Limit of them and resumes after
// them, so a prefix full of new keys cannot make one entry long.
func TestDeletePrefixChunkSkipsBounded(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("p/zz", "1", 0, 1))
	for i := range 20 {
		apply(t, f, uint64(10+i), setCmd(fmt.Sprintf("p/%02d", i), "1", 0, 1))
	}
	r := apply(t, f, 100, chunk("p/", 2, 5, "", 1)).(DeletePrefixResult)
	if !r.More || r.Deleted != 0 || r.Next != "p/07" {
		t.Fatalf("chunk over new keys: %+v, want to stop after 8 visits at p/07", r)
	}
	count, _, _ := runBulkDelete(t, f, 101, chunk("p/", 2, 5, "p/07", 1))
	if count != 1 || f.Len() != 20 {
		t.Fatalf("deleted %d, %d left; want p/zz only", count, f.Len())
	}
}

// TestDeletePrefixChunkIdempotent: a retry of an idempotent bulk delete,
// whether it arrives while the original is half done or after, continues
// with the original's bound (never deleting keys written since), and every
// caller ends with the same recorded total.
func TestDeletePrefixChunkIdempotent(t *testing.T) {
	f := New()
	idx := uint64(1)
	for i := range 7 {
		apply(t, f, idx, setCmd(fmt.Sprintf("s/%d", i), "1", 0, 1))
		idx++
	}
	first := chunk("s/", 2, 0, "", 10)
	first.IdemKey, first.Fingerprint = "logout-1", [32]byte{1}
	orig := apply(t, f, idx, first).(DeletePrefixResult)
	idx++
	if !orig.Recorded || orig.Total != 2 || !orig.More {
		t.Fatalf("original's first chunk: %+v", orig)
	}
	apply(t, f, idx, setCmd("s/new", "1", 0, 10)) // written while the original runs
	idx++

	// The retry arrives now: answered from the record, with the bound.
	retry := apply(t, f, idx, first).(DeletePrefixResult)
	idx++
	if !retry.Replayed || !retry.More || retry.Bound != orig.Bound || retry.Total != 2 {
		t.Fatalf("retry's first chunk: %+v, want a replay with bound %d", retry, orig.Bound)
	}
	// The retry finishes the job; the original's next chunk then finds the
	// remaining part done.
	c := first
	c.Bound, c.After = retry.Bound, retry.Next
	_, last, next := runBulkDelete(t, f, idx, c)
	idx = next
	if !last.Recorded || last.Total != 7 {
		t.Fatalf("retry's last chunk: %+v, want the recorded total 7", last)
	}
	c.Bound, c.After = orig.Bound, orig.Next
	r := apply(t, f, idx, c).(DeletePrefixResult)
	idx++
	if r.More || r.Deleted != 0 || !r.Recorded || r.Total != 7 {
		t.Fatalf("original's next chunk after the retry finished: %+v", r)
	}
	if keys := f.listAll(); fmt.Sprint(keys) != "[s/new]" {
		t.Fatalf("left %v, want s/new only", keys)
	}
	// A later retry returns the total and deletes nothing new.
	apply(t, f, idx, setCmd("s/newer", "1", 0, 10))
	idx++
	count, last, _ := runBulkDelete(t, f, idx, first)
	if count != 7 || last.Total != 7 || f.Len() != 2 {
		t.Fatalf("late retry: count %d, %+v, %d keys left; want 7 and both new keys kept", count, last, f.Len())
	}
	// The same key for another request is refused.
	other := first
	other.Fingerprint = [32]byte{2}
	if r := apply(t, f, 1000, other).(DeletePrefixResult); r.Status != StatusIdempotencyKeyReused {
		t.Fatalf("reused key: %+v", r)
	}
}
