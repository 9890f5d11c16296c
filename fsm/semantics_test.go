package fsm

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func ifMatch(c Command, v uint64) Command { c.Cond, c.CondVersion = CondIfMatch, v; return c }
func ifAbsent(c Command) Command          { c.Cond = CondIfAbsent; return c }
func idem(c Command, key string, fp byte) Command {
	c.IdemKey = key
	c.Fingerprint = [FingerprintSize]byte{fp}
	return c
}
func touchCmd(key string, exp, now int64) Command {
	return Command{Op: OpTouch, Key: key, ExpiresAt: exp, Now: now}
}
func incrCmd(key string, by, exp, now int64) Command {
	return Command{Op: OpIncr, Key: key, By: by, ExpiresAt: exp, Now: now}
}
func delPrefixCmd(prefix string, now int64) Command {
	return Command{Op: OpDeletePrefix, Key: prefix, Now: now}
}

func TestConditionalWrites(t *testing.T) {
	tests := []struct {
		name  string
		steps []step // at indexes 1, 2, ...
	}{
		{"if-match on missing key", []step{
			{ifMatch(setCmd("k", "1", 0, 10), 1), SetResult{Status: StatusVersionMismatch}},
		}},
		{"if-match equal and stale", []step{
			{setCmd("k", "1", 0, 10), SetResult{Created: true, Revision: 1}},
			{ifMatch(setCmd("k", "2", 0, 10), 1), SetResult{Revision: 2}},
			{ifMatch(setCmd("k", "3", 0, 10), 1), SetResult{Status: StatusVersionMismatch, Current: 2}},
		}},
		{"if-match on expired key mismatches with current 0", []step{
			{setCmd("k", "1", 50, 10), SetResult{Created: true, Revision: 1, ExpiresAt: 50}},
			{ifMatch(setCmd("k", "2", 0, 50), 1), SetResult{Status: StatusVersionMismatch}},
		}},
		{"if-absent creates once", []step{
			{ifAbsent(setCmd("k", "1", 0, 10)), SetResult{Created: true, Revision: 1}},
			{ifAbsent(setCmd("k", "2", 0, 10)), SetResult{Status: StatusAlreadyExists, Current: 1}},
		}},
		{"if-absent succeeds on expired key", []step{
			{setCmd("k", "1", 50, 10), SetResult{Created: true, Revision: 1, ExpiresAt: 50}},
			{ifAbsent(setCmd("k", "2", 0, 49)), SetResult{Status: StatusAlreadyExists, Current: 1}},
			{ifAbsent(setCmd("k", "2", 0, 50)), SetResult{Created: true, Revision: 3}},
		}},
		{"delete if-match", []step{
			{setCmd("k", "1", 0, 10), SetResult{Created: true, Revision: 1}},
			{ifMatch(deleteCmd("k", 10), 7), DeleteResult{Status: StatusVersionMismatch, Current: 1}},
			{ifMatch(deleteCmd("k", 10), 1), DeleteResult{Deleted: true, Revision: 3}},
			{ifMatch(deleteCmd("k", 10), 1), DeleteResult{Status: StatusVersionMismatch}},
		}},
		{"keep ttl", []step{
			{setCmd("k", "1", 500, 10), SetResult{Created: true, Revision: 1, ExpiresAt: 500}},
			{Command{Op: OpSet, Key: "k", Value: []byte("2"), ExpiresAt: 9999, KeepTTL: true, Now: 20}, SetResult{Revision: 2, ExpiresAt: 500}},
			{Command{Op: OpSet, Key: "n", Value: []byte("2"), KeepTTL: true, Now: 20}, SetResult{Created: true, Revision: 3}},
			// Kept from an expired entry? No: expired is absent, so no expiry.
			{Command{Op: OpSet, Key: "k", Value: []byte("3"), KeepTTL: true, Now: 600}, SetResult{Created: true, Revision: 4}},
		}},
		{"touch", []step{
			{touchCmd("k", 100, 10), SetResult{Status: StatusNotFound}},
			{setCmd("k", "1", 100, 10), SetResult{Created: true, Revision: 2, ExpiresAt: 100}},
			{touchCmd("k", 300, 90), SetResult{Revision: 3, ExpiresAt: 300}},
			{ifMatch(touchCmd("k", 400, 90), 2), SetResult{Status: StatusVersionMismatch, Current: 3}},
			{ifMatch(touchCmd("k", 0, 90), 3), SetResult{Revision: 5}},
			{touchCmd("k", 50, 90), SetResult{Revision: 6, ExpiresAt: 50}},
			{touchCmd("k", 500, 90), SetResult{Status: StatusNotFound}}, // expired at 50
		}},
		{"incr", []step{
			{incrCmd("c", 1, 1000, 10), IncrResult{Created: true, Value: 1, Revision: 1, ExpiresAt: 1000}},
			{incrCmd("c", 41, 5000, 10), IncrResult{Value: 42, Revision: 2, ExpiresAt: 1000}}, // ttl only on create
			{incrCmd("c", -50, 0, 10), IncrResult{Value: -8, Revision: 3, ExpiresAt: 1000}},
			{incrCmd("c", 1, 0, 1000), IncrResult{Created: true, Value: 1, Revision: 4}}, // expired: starts over
			{ifMatch(incrCmd("c", 1, 0, 1000), 1), IncrResult{Status: StatusVersionMismatch, Current: 4}},
			{incrCmd("c", 0, 0, 1000), IncrResult{Value: 1, Revision: 6}},
		}},
		{"incr overflow", []step{
			{setCmd("c", "9223372036854775806", 0, 1), SetResult{Created: true, Revision: 1}},
			{incrCmd("c", 1, 0, 1), IncrResult{Value: math.MaxInt64, Revision: 2}},
			{incrCmd("c", 1, 0, 1), IncrResult{Status: StatusOverflow, Current: 2}},
			{setCmd("d", "-9223372036854775808", 0, 1), SetResult{Created: true, Revision: 4}},
			{incrCmd("d", -1, 0, 1), IncrResult{Status: StatusOverflow, Current: 4}},
			{incrCmd("d", math.MaxInt64, 0, 1), IncrResult{Value: -1, Revision: 6}},
		}},
		{"delete prefix", []step{
			{setCmd("u/1/a", "1", 0, 1), SetResult{Created: true, Revision: 1}},
			{setCmd("u/1/b", "1", 50, 1), SetResult{Created: true, Revision: 2, ExpiresAt: 50}},
			{setCmd("u/10", "1", 0, 1), SetResult{Created: true, Revision: 3}},
			{setCmd("u/2/a", "1", 0, 1), SetResult{Created: true, Revision: 4}},
			{setCmd("u/1", "1", 0, 1), SetResult{Created: true, Revision: 5}},
			{delPrefixCmd("u/1/", 60), DeletePrefixResult{Deleted: 1, Revision: 6}}, // u/1/b expired: removed, not counted
			{delPrefixCmd("u/1/", 60), DeletePrefixResult{Deleted: 0, Revision: 7}},
			{delPrefixCmd("u/1", 60), DeletePrefixResult{Deleted: 2, Revision: 8}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, New(), 1, tc.steps)
		})
	}
}

func TestDeletePrefixLeavesOthersAndExpiryIndex(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("a/1", "1", 100, 0))
	apply(t, f, 2, setCmd("b/1", "1", 100, 0))
	apply(t, f, 3, delPrefixCmd("a/", 0))
	if f.Len() != 1 {
		t.Fatalf("Len = %d, want 1", f.Len())
	}
	if got := f.ExpiredItems(1000, 10); !reflect.DeepEqual(got, []ExpireItem{{"b/1", 2}}) {
		t.Fatalf("expiry index = %v", got)
	}
}

func TestIncrRejectsNonIntegers(t *testing.T) {
	for _, v := range []string{`"1"`, `1.0`, `1e3`, `1E3`, `-`, `01`, `-01`, `+1`, `null`, `true`, `{}`, `[1]`, `9223372036854775808`, `-9223372036854775809`, `0.5`} {
		t.Run(v, func(t *testing.T) {
			f := New()
			apply(t, f, 1, setCmd("c", v, 0, 0))
			if got := apply(t, f, 2, incrCmd("c", 1, 0, 0)); !reflect.DeepEqual(got, IncrResult{Status: StatusNotAnInteger, Current: 1}) {
				t.Fatalf("got %#v", got)
			}
			if e, _ := f.Get("c", 0); string(e.Value) != v || e.Revision != 1 {
				t.Fatalf("value changed: %+v", e)
			}
		})
	}
	for v, want := range map[string]int64{`0`: 1, `-0`: 1, `-7`: -6, `123`: 124} {
		f := New()
		apply(t, f, 1, setCmd("c", v, 0, 0))
		if got := apply(t, f, 2, incrCmd("c", 1, 0, 0)).(IncrResult); got.Status != StatusOK || got.Value != want {
			t.Fatalf("incr %s: got %#v, want %d", v, got, want)
		}
		if e, _ := f.Get("c", 0); string(e.Value) != fmt.Sprint(want) {
			t.Fatalf("stored %q, want canonical %d", e.Value, want)
		}
	}
}

func TestIdempotentCommands(t *testing.T) {
	f := New()
	const t0 = 1_700_000_000_000
	runSteps(t, f, 1, []step{
		{idem(incrCmd("c", 5, 0, t0), "r1", 1), IncrResult{Created: true, Value: 5, Revision: 1}},
		// The same request again: the original result, nothing applied.
		{idem(incrCmd("c", 5, 0, t0+1), "r1", 1), IncrResult{Created: true, Value: 5, Revision: 1}},
		// Same key, different request: refused, nothing applied.
		{idem(incrCmd("c", 6, 0, t0+2), "r1", 2), IncrResult{Status: StatusIdempotencyKeyReused}},
		{idem(setCmd("k", "1", 0, t0+2), "r1", 3), SetResult{Status: StatusIdempotencyKeyReused}},
		// Business failures are recorded too.
		{idem(ifMatch(setCmd("k", "1", 0, t0+3), 99), "r2", 1), SetResult{Status: StatusVersionMismatch}},
		{setCmd("k", "1", 0, t0+4), SetResult{Created: true, Revision: 6}},
		{idem(ifMatch(setCmd("k", "1", 0, t0+5), 99), "r2", 1), SetResult{Status: StatusVersionMismatch}},
		{idem(deleteCmd("k", t0+6), "r3", 1), DeleteResult{Deleted: true, Revision: 8}},
		{idem(deleteCmd("k", t0+7), "r3", 1), DeleteResult{Deleted: true, Revision: 8}},
		{idem(delPrefixCmd("", t0+8), "r4", 1), DeletePrefixResult{Deleted: 1, Revision: 10}},
		{idem(delPrefixCmd("", t0+8), "r4", 1), DeletePrefixResult{Deleted: 1, Revision: 10}},
		// Just inside the window: still a replay.
		{idem(incrCmd("c", 5, 0, t0+IdempotencyWindowMs-1), "r1", 1), IncrResult{Created: true, Value: 5, Revision: 1}},
	})
	if e, ok := f.Get("c", 0); ok {
		t.Fatalf("c should have been deleted by the prefix delete: %+v", e)
	}
	if n := f.IdempotencyEntries(); n != 4 {
		t.Fatalf("entries = %d, want 4", n)
	}
	// At the window's end the entry is aged: pruned, and the request applies anew.
	runSteps(t, f, 13, []step{
		{idem(incrCmd("c", 5, 0, t0+IdempotencyWindowMs), "r1", 1), IncrResult{Created: true, Value: 5, Revision: 13}},
	})
	if n := f.IdempotencyEntries(); n != 4 {
		t.Fatalf("entries after window = %d, want 4 (r1 re-recorded, r2..r4 still inside theirs)", n)
	}
	// Pruning needs no idempotent command: any command ages entries out.
	apply(t, f, 14, Command{Op: OpBarrier, Now: t0 + 3*IdempotencyWindowMs})
	if n := f.IdempotencyEntries(); n != 0 {
		t.Fatalf("entries after barrier = %d, want 0", n)
	}
}

func TestIdempotencyPruneIsBounded(t *testing.T) {
	f := New()
	n := 3 * idemPruneBatch
	for i := 1; i <= n; i++ {
		apply(t, f, uint64(i), idem(setCmd("k", "1", 0, int64(i)), fmt.Sprint("r", i), 1))
	}
	apply(t, f, uint64(n+1), Command{Op: OpBarrier, Now: int64(n) + IdempotencyWindowMs})
	if got := f.IdempotencyEntries(); got != n-idemPruneBatch {
		t.Fatalf("entries = %d, want %d (one batch pruned)", got, n-idemPruneBatch)
	}
}

func TestHashCoversDedupTable(t *testing.T) {
	a, b := New(), New()
	apply(t, a, 1, setCmd("k", "1", 0, 0))
	apply(t, b, 1, idem(setCmd("k", "1", 0, 0), "r", 1))
	if a.Hash() == b.Hash() {
		t.Fatal("hash ignores the dedup table")
	}
}

func TestSnapshotRoundTripWithDedupTable(t *testing.T) {
	f := New()
	const t0 = 1_000_000
	runSteps(t, f, 1, []step{
		{idem(setCmd("s", `{"u":1}`, t0+5000, t0), "a", 1), SetResult{Created: true, Revision: 1, ExpiresAt: t0 + 5000}},
		{idem(incrCmd("c", 3, 0, t0), "b", 2), IncrResult{Created: true, Value: 3, Revision: 2}},
		{touchCmd("s", t0+9000, t0), SetResult{Revision: 3, ExpiresAt: t0 + 9000}},
		{setCmd("gone", "1", t0-1, t0), SetResult{Created: true, Revision: 4, ExpiresAt: t0 - 1}},
	})
	g := New()
	if err := restoreBytes(g, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	if stateOf(g) != stateOf(f) {
		t.Fatalf("restored %+v, want %+v", stateOf(g), stateOf(f))
	}
	// The restored table answers retries exactly as the original would.
	for _, fsm := range []*FSM{f, g} {
		runSteps(t, fsm, 5, []step{
			{idem(incrCmd("c", 3, 0, t0+1), "b", 2), IncrResult{Created: true, Value: 3, Revision: 2}},
			{idem(incrCmd("c", 3, 0, t0+1), "b", 9), IncrResult{Status: StatusIdempotencyKeyReused}},
		})
	}
	if f.Hash() != g.Hash() {
		t.Fatal("diverged after retries")
	}
	if e, ok := g.Get("s", t0); !ok || e.Revision != 3 || e.ExpiresAt != t0+9000 {
		t.Fatalf("s = %+v %v", e, ok)
	}
	if got := g.ExpiredItems(t0, 10); !reflect.DeepEqual(got, []ExpireItem{{"gone", 4}}) {
		t.Fatalf("expiry index after restore = %v", got)
	}
}

func TestList(t *testing.T) {
	f := New()
	keys := []string{"a", "u/1", "u/2", "u/3", "u/30", "u/4", "v"}
	for i, k := range keys {
		exp := int64(0)
		if k == "u/3" {
			exp = 50
		}
		apply(t, f, uint64(i+1), setCmd(k, "1", exp, 0))
	}
	names := func(es []ListEntry) string {
		var s []string
		for _, e := range es {
			s = append(s, e.Key)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		prefix, after string
		limit         int
		now           int64
		want          string
		more          bool
	}{
		{"u/", "", 10, 0, "u/1,u/2,u/3,u/30,u/4", false},
		{"u/", "", 10, 50, "u/1,u/2,u/30,u/4", false}, // expired skipped
		{"u/", "", 2, 0, "u/1,u/2", true},
		{"u/", "u/2", 2, 50, "u/30,u/4", false},
		{"u/", "u/25", 1, 0, "u/3", true}, // a cursor key that no longer exists
		{"u/", "u/4", 5, 0, "", false},
		{"", "", 3, 0, "a,u/1,u/2", true},
		{"", "u/4", 3, 0, "v", false},
		{"x", "", 3, 0, "", false},
		{"u/", "a", 1, 0, "u/1", true}, // cursor before the prefix
	}
	for _, tt := range tests {
		got, more := f.List(tt.prefix, tt.after, tt.limit, tt.now)
		if names(got) != tt.want || more != tt.more {
			t.Errorf("List(%q, %q, %d, %d) = %s more=%v, want %s more=%v", tt.prefix, tt.after, tt.limit, tt.now, names(got), more, tt.want, tt.more)
		}
	}
	// Only expired matches after the page: not "more".
	if got, more := f.List("u/3", "", 1, 50); len(got) != 1 || got[0].Key != "u/30" || more {
		t.Errorf("List(u/3) = %s more=%v", names(got), more)
	}
}
