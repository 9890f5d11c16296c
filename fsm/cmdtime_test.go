package fsm

import (
	"fmt"
	"testing"
)

// The scenario of a leader whose clock is 20 minutes behind: after commands
// at t0+10min, commands stamped at t0-10min must be judged at t0+10min.
func TestCommandTimeNeverRunsBackwards(t *testing.T) {
	const (
		minute = int64(60_000)
		t0     = int64(1_700_000_000_000)
		slow   = t0 - 10*minute // the skewed leader's clock
	)
	f := New()
	runSteps(t, f, 1, []step{
		{setCmd("k600", `"keep-me"`, t0+10*minute, t0), SetResult{Created: true, Revision: 1, ExpiresAt: t0 + 10*minute}},
		{setCmd("k60", `"gone"`, t0+minute, t0), SetResult{Created: true, Revision: 2, ExpiresAt: t0 + minute}},
		{incrCmd("ctr", 1, t0+minute, t0), IncrResult{Created: true, Value: 1, Revision: 3, ExpiresAt: t0 + minute}},
		// Command time reaches t0+2min: k60 and ctr expired.
		{Command{Op: OpBarrier, Now: t0 + 2*minute}, BarrierResult{}},
		// Now the slow leader. k60 is absent for a create-only write, its
		// conditional write fails, ctr starts again from 0, and the TTL it
		// stamps counts from the command time reached, not from its clock.
		{ifAbsent(setCmd("k60", `"new"`, slow+minute, slow)), SetResult{Created: true, Revision: 5, ExpiresAt: t0 + 3*minute}},
		{ifMatch(setCmd("k600", `"x"`, 0, slow), 99), SetResult{Status: StatusVersionMismatch, Current: 1}},
		{incrCmd("ctr", 5, 0, slow), IncrResult{Created: true, Value: 5, Revision: 7}},
		{touchCmd("k60", slow+30_000, slow), SetResult{Revision: 8, ExpiresAt: t0 + 2*minute + 30_000}},
	})
	if got := f.LastNow(); got != t0+2*minute {
		t.Fatalf("LastNow = %d, want %d (the slow leader's commands must not move it back)", got, t0+2*minute)
	}

	// An expired key is removed by an expire command stamped before its
	// expiry, once command time has passed it.
	g := New()
	runSteps(t, g, 1, []step{
		{setCmd("a", "1", t0+minute, t0), SetResult{Created: true, Revision: 1, ExpiresAt: t0 + minute}},
		{Command{Op: OpBarrier, Now: t0 + 2*minute}, BarrierResult{}},
		// A read at the slow clock would see a live key; command time says it expired.
		{ifAbsent(setCmd("b", "1", 0, slow)), SetResult{Created: true, Revision: 3}},
		{expireCmd(slow, ExpireItem{"a", 1}), ExpireResult{Expired: 1}},
	})
	if _, ok := g.Get("a", g.LastNow()); ok {
		t.Fatal("an expired key reappeared")
	}
}

// An Idempotency-Key recorded by a leader whose clock is behind is dated at
// the command time reached, so a correct clock later does not find it aged:
// the window is never shortened.
func TestDedupWindowNotShortenedBySlowLeader(t *testing.T) {
	const (
		minute = int64(60_000)
		t0     = int64(1_700_000_000_000)
	)
	f := New()
	runSteps(t, f, 1, []step{
		{Command{Op: OpBarrier, Now: t0 + 20*minute}, BarrierResult{}},
		// The slow leader, 20 minutes behind, applies X1.
		{idem(incrCmd("ctr", 1, 0, t0), "X1", 1), IncrResult{Created: true, Value: 1, Revision: 2}},
		// Leadership back on a correct clock, 9 minutes later: still a replay.
		{idem(incrCmd("ctr", 1, 0, t0+29*minute), "X1", 1), IncrResult{Created: true, Value: 1, Revision: 2}},
		// And from the slow leader again: a replay too.
		{idem(incrCmd("ctr", 1, 0, t0+5*minute), "X1", 1), IncrResult{Created: true, Value: 1, Revision: 2}},
		// A full window after it was recorded, it is a new request.
		{idem(incrCmd("ctr", 1, 0, t0+30*minute), "X1", 1), IncrResult{Value: 2, Revision: 5}},
	})
}

// Apply never drops an entry inside its window, however many are recorded:
// the table is bounded by the proposer's admission, not by eviction.
func TestDedupNeverEvictsYoungEntries(t *testing.T) {
	const n = 5000
	f := New()
	for i := 1; i <= n; i++ {
		apply(t, f, uint64(i), idem(setCmd(fmt.Sprint("k", i%7), "1", 0, int64(i)), fmt.Sprint("r", i), 1))
	}
	for i := 1; i <= n; i += 97 {
		c := idem(setCmd(fmt.Sprint("k", i%7), "1", 0, int64(n)), fmt.Sprint("r", i), 1)
		if got := apply(t, f, uint64(n+i), c).(SetResult); got.Revision != uint64(i) {
			t.Fatalf("retry of r%d answered %+v, want the original result (revision %d)", i, got, i)
		}
	}
	if got := f.IdempotencyUsage().Entries; got != n {
		t.Fatalf("entries = %d, want %d", got, n)
	}
}

// The table's accounted size follows every record, replacement and prune,
// and is recomputed identically from a snapshot; lastNow survives it.
func TestIdempotencyBytesAndLastNowSurviveSnapshot(t *testing.T) {
	const t0 = int64(1_700_000_000_000)
	f := New()
	var want int64
	for i := 1; i <= 300; i++ {
		c := idem(incrCmd("c", 1, 0, t0+int64(i)), fmt.Sprint("req-", i), 1)
		res := apply(t, f, uint64(i), c)
		want += IdempotencyEntryBytes(c.IdemKey, len(encodeResult(res)))
	}
	u := f.IdempotencyUsage()
	if u.Entries != 300 || u.Bytes != want || u.Oldest != t0+1 {
		t.Fatalf("usage = %+v, want 300 entries, %d bytes, oldest %d", u, want, t0+1)
	}
	// A window later, one command prunes idemPruneBatch entries.
	apply(t, f, 301, Command{Op: OpBarrier, Now: t0 + IdempotencyWindowMs + 1000})
	u = f.IdempotencyUsage()
	if u.Entries != 300-idemPruneBatch || u.Bytes >= want {
		t.Fatalf("after pruning: %+v", u)
	}
	// A slow clock afterwards changes nothing in the snapshot's clock.
	apply(t, f, 302, Command{Op: OpBarrier, Now: t0})

	g := New()
	if err := restoreBytes(g, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	if g.IdempotencyUsage() != f.IdempotencyUsage() || g.LastNow() != f.LastNow() || g.Hash() != f.Hash() {
		t.Fatalf("restored: usage %+v lastNow %d, want %+v %d", g.IdempotencyUsage(), g.LastNow(), f.IdempotencyUsage(), f.LastNow())
	}
	if f.LastNow() != t0+IdempotencyWindowMs+1000 {
		t.Fatalf("LastNow = %d", f.LastNow())
	}
}

// A version 3 snapshot (no clock section) restores; the last command time is
// taken from the newest dedup entry, so every replica agrees on it.
func TestRestoreVersion3Snapshot(t *testing.T) {
	res := encodeResult(SetResult{Created: true, Revision: 1})
	v3 := craftSnapshot(snapshotMagic, 3, 2, 1, snapshotRecord("a", "1", 1, 0),
		idemSection(idemRecord("r1", 1, res, 40), idemRecord("r2", 1, res, 70)), nodesSection())
	g := New()
	if err := restoreBytes(g, v3); err != nil {
		t.Fatalf("restore version 3: %v", err)
	}
	want := IdempotencyUsage{Entries: 2, Bytes: IdempotencyEntryBytes("r1", len(res)) + IdempotencyEntryBytes("r2", len(res)), Oldest: 40}
	if u := g.IdempotencyUsage(); u != want || g.LastNow() != 70 {
		t.Fatalf("version 3 restore: usage %+v lastNow %d, want %+v and 70", u, g.LastNow(), want)
	}
	// The next command at an earlier time is judged at 70: r1 is replayed.
	if got := apply(t, g, 3, idem(setCmd("a", "2", 0, 0), "r1", 1)); got != (SetResult{Created: true, Revision: 1}) {
		t.Fatalf("replay after restore = %+v", got)
	}
}
