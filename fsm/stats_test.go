package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// scanStats recomputes Keys, ValueBytes and KeyBytes the slow way.
func scanStats(f *FSM) (keys int, valueBytes, keyBytes int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.data.Scan(func(it item) bool {
		keys++
		valueBytes += int64(len(it.value()))
		keyBytes += int64(len(it.key()))
		return true
	})
	return keys, valueBytes, keyBytes
}

// TestStatsFollowEveryOp drives random commands of every kind that changes
// entries and checks after each that the running totals equal a full scan, and
// that a replica restored from a snapshot reports the same totals.
func TestStatsFollowEveryOp(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	f := New()
	var wantExpired uint64
	now := int64(1_000_000)
	for i := uint64(1); i <= 3000; i++ {
		key := fmt.Sprintf("k/%d", rng.IntN(40))
		now += int64(rng.IntN(20))
		var c Command
		switch rng.IntN(7) {
		case 0, 1:
			exp := int64(0)
			if rng.IntN(2) == 0 {
				exp = now + int64(rng.IntN(100))
			}
			c = setCmd(key, fmt.Sprintf(`"%0*d"`, rng.IntN(50), i), exp, now)
		case 2:
			c = Command{Op: OpIncr, Key: key, By: 3, Now: now}
		case 3:
			c = Command{Op: OpTouch, Key: key, ExpiresAt: now + 10, Now: now}
		case 4:
			c = deleteCmd(key, now)
		case 5:
			c = Command{Op: OpDeletePrefix, Key: fmt.Sprintf("k/%d", rng.IntN(5)), Now: now}
		case 6:
			c = expireCmd(now, f.ExpiredItems(now, 5)...)
		}
		res := apply(t, f, i, c)
		if r, ok := res.(ExpireResult); ok {
			wantExpired += uint64(r.Expired)
		}
		keys, vb, kb := scanStats(f)
		if st := f.Stats(); st.Keys != keys || st.ValueBytes != vb || st.KeyBytes != kb || st.Expired != wantExpired {
			t.Fatalf("after %d (%s): Stats = %+v, want keys %d, value bytes %d, key bytes %d, expired %d", i, c.Op, st, keys, vb, kb, wantExpired)
		}
	}
	if wantExpired == 0 {
		t.Fatal("the workload never expired anything; the test proves less than it claims")
	}

	g := New()
	if err := restoreBytes(g, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	want, got := f.Stats(), g.Stats()
	if got.Keys != want.Keys || got.ValueBytes != want.ValueBytes || got.KeyBytes != want.KeyBytes || got.Expired != 0 {
		t.Fatalf("restored replica: Stats = %+v, want keys %d, value bytes %d, expired 0", got, want.Keys, want.ValueBytes)
	}
}
