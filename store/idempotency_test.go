package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// A flood of new keyed writes, concurrent and through every node, against a
// small dedup budget: some are refused with ErrIdempotencyTableFull, none of
// the accepted ones is forgotten (each retry gets its original result), the
// table never exceeds the budget, and writes without a key still go through.
func TestIdempotencyTableFullNeverForgetsYoungKeys(t *testing.T) {
	const scope = "web"
	need := fsm.IdempotencyEntryBytesBound(scopedIdempotencyKey(scope, "flood-000-00"))
	budget := 40 * need
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.IdempotencyMaxBytes = budget })
	c.leader()
	nodes := c.running()

	type accepted struct {
		key     string
		version uint64
	}
	var (
		mu   sync.Mutex
		oks  []accepted
		full atomic.Int64
		wg   sync.WaitGroup
	)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := nodes[g%len(nodes)]
			for i := range 10 {
				key := fmt.Sprintf("flood-%03d-%02d", g, i)
				opts := WriteOptions{IdempotencyKey: key, IdempotencyScope: scope, Fingerprint: [32]byte{byte(g), byte(i)}}
				res, err := nd.store.Put(ctxTimeout(t, 10*time.Second), key, []byte(`"v"`), 0, false, opts)
				switch {
				case err == nil:
					mu.Lock()
					oks = append(oks, accepted{key, res.Version})
					mu.Unlock()
				case errors.Is(err, ErrIdempotencyTableFull):
					full.Add(1)
				default:
					t.Errorf("put %s: %v", key, err)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if full.Load() == 0 || len(oks) == 0 {
		t.Fatalf("%d accepted, %d refused: the flood should fill a %d-byte table", len(oks), full.Load(), budget)
	}
	ld := c.leader()
	u := ld.store.fsm.IdempotencyUsage()
	if u.Entries != len(oks) || u.Bytes > budget {
		t.Fatalf("table holds %d entries, %d bytes; want the %d accepted writes within %d bytes", u.Entries, u.Bytes, len(oks), budget)
	}
	t.Logf("budget %d bytes: %d accepted, %d refused, table %d bytes", budget, len(oks), full.Load(), u.Bytes)

	// Full: a new key is refused on every node; a recorded key is answered
	// with its original result; a write without a key applies.
	for _, nd := range nodes {
		_, err := nd.store.Put(ctxTimeout(t, 5*time.Second), "late", []byte(`1`), 0, false,
			WriteOptions{IdempotencyKey: "late-" + nd.id, IdempotencyScope: scope})
		if !errors.Is(err, ErrIdempotencyTableFull) {
			t.Fatalf("new key via %s on a full table: %v, want ErrIdempotencyTableFull", nd.id, err)
		}
	}
	for i, a := range oks {
		var g, n int
		fmt.Sscanf(a.key, "flood-%03d-%02d", &g, &n)
		nd := nodes[i%len(nodes)]
		res, err := nd.store.Put(ctxTimeout(t, 5*time.Second), a.key, []byte(`"v"`), 0, false,
			WriteOptions{IdempotencyKey: a.key, IdempotencyScope: scope, Fingerprint: [32]byte{byte(g), byte(n)}})
		if err != nil || res.Version != a.version {
			t.Fatalf("retry of %s via %s: %+v, %v; want the original version %d", a.key, nd.id, res, err, a.version)
		}
	}
	if _, err := nodes[1].store.Set(ctxTimeout(t, 5*time.Second), "plain", []byte(`1`), 0); err != nil {
		t.Fatalf("write without a key on a full table: %v", err)
	}
	if got := ld.store.fsm.IdempotencyUsage().Entries; got != len(oks) {
		t.Fatalf("entries after retries = %d, want %d", got, len(oks))
	}
}

// The same Idempotency-Key from two callers names two requests.
func TestIdempotencyKeysAreScopedPerCaller(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	ld := c.leader()
	fl := c.followers(ld)[0]
	incr := func(nd *testNode, scope string, fp byte) int64 {
		t.Helper()
		res, err := nd.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0,
			WriteOptions{IdempotencyKey: "X1", IdempotencyScope: scope, Fingerprint: [32]byte{fp}})
		if err != nil {
			t.Fatalf("incr as %q: %v", scope, err)
		}
		return res.Value
	}
	if v := incr(ld, "alice", 1); v != 1 {
		t.Fatalf("alice's incr = %d, want 1", v)
	}
	// Another caller's X1, with another body: neither reused nor a replay.
	if v := incr(fl, "bob", 2); v != 2 {
		t.Fatalf("bob's incr = %d, want 2 (applied, independent of alice's key)", v)
	}
	if v := incr(fl, "alice", 1); v != 1 {
		t.Fatalf("alice's retry = %d, want her original 1", v)
	}
	if v := incr(ld, "bob", 2); v != 2 {
		t.Fatalf("bob's retry = %d, want his original 2", v)
	}
	if _, err := ld.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0,
		WriteOptions{IdempotencyKey: "X1", IdempotencyScope: "alice", Fingerprint: [32]byte{9}}); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("alice reusing X1 for another request: %v, want ErrIdempotencyKeyReused", err)
	}
}

// A leader whose clock falls 20 minutes behind the command time already
// reached: it stamps TTLs from that time, reads judge expiry at it, and a
// keyed retry within the window is still a replay.
func TestCommandTimeSurvivesClockStepBack(t *testing.T) {
	var offset atomic.Int64
	// One node: no peer to measure its clock against, so the clock bound
	// (clock.go) lets it stamp whatever its clock says.
	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	nd := c.nodes[0]
	c.leader()
	ctx := func() WriteOptions { return WriteOptions{IdempotencyKey: "X1", Fingerprint: [32]byte{1}} }

	if _, err := nd.store.Set(ctxTimeout(t, 5*time.Second), "k1", []byte(`1`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if r, err := nd.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0, ctx()); err != nil || r.Value != 1 {
		t.Fatalf("incr: %+v %v", r, err)
	}
	offset.Store(int64(2 * time.Minute)) // k1 expires in command time
	if _, err := nd.store.Set(ctxTimeout(t, 5*time.Second), "tick", []byte(`1`), 0); err != nil {
		t.Fatal(err)
	}
	reached := nd.store.fsm.LastNow()

	offset.Store(int64(-20 * time.Minute))
	if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "k1", Linearizable); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired k1 read at a slow clock: %v, want ErrNotFound", err)
	}
	res, err := nd.store.Set(ctxTimeout(t, 5*time.Second), "k2", []byte(`1`), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ExpiresAt.UnixMilli(); got < reached+60_000 {
		t.Fatalf("k2 expires at %d, want at least %d (the command time reached plus its TTL)", got, reached+60_000)
	}
	if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "k2", Linearizable); err != nil {
		t.Fatalf("k2 right after its write: %v", err)
	}
	if r, err := nd.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0, ctx()); err != nil || r.Value != 1 {
		t.Fatalf("retried incr at a slow clock: %+v %v, want the original 1", r, err)
	}
	// Nine minutes after the incr in command time: still inside its window.
	offset.Store(int64(9 * time.Minute))
	if r, err := nd.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0, ctx()); err != nil || r.Value != 1 {
		t.Fatalf("retried incr 9 minutes later: %+v %v, want the original 1", r, err)
	}
}

// The dedup table's gauges agree with the state machine on every node.
func TestIdempotencyMetrics(t *testing.T) {
	c, regs := newMeteredCluster(t)
	ld := c.leader()
	for i := range 3 {
		if _, err := ld.store.Incr(ctxTimeout(t, 5*time.Second), "ctr", 1, 0,
			WriteOptions{IdempotencyKey: fmt.Sprint("m", i), IdempotencyScope: "web"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range c.nodes {
		waitFor(t, 10*time.Second, nd.id+" to apply the writes", func() bool {
			return nd.store.AppliedIndex() >= ld.store.AppliedIndex()
		})
		u := nd.store.fsm.IdempotencyUsage()
		reg := regs[nd.id]
		if v, _ := sample(t, reg, "quorumkv_idempotency_entries"); v != 3 || u.Entries != 3 {
			t.Errorf("%s: quorumkv_idempotency_entries = %v (fsm %d), want 3", nd.id, v, u.Entries)
		}
		if v, _ := sample(t, reg, "quorumkv_idempotency_bytes"); v != float64(u.Bytes) || v <= 0 {
			t.Errorf("%s: quorumkv_idempotency_bytes = %v, fsm %d", nd.id, v, u.Bytes)
		}
		if v, found := sample(t, reg, "quorumkv_idempotency_oldest_age_seconds"); !found || v < 0 || v > 60 {
			t.Errorf("%s: quorumkv_idempotency_oldest_age_seconds = %v (found %v), want a few seconds", nd.id, v, found)
		}
	}
}

func TestScopedIdempotencyKey(t *testing.T) {
	long := strings.Repeat("n", maxIdempotencyScope+1)
	for _, tc := range []struct{ scope, key string }{
		{"web", "X1"}, {"", "X1"}, {"ops", strings.Repeat("k", 128)}, {long, "X1"}, {"名前", "a:b"},
	} {
		k := scopedIdempotencyKey(tc.scope, tc.key)
		if len(k) > maxIdempotencyScope+1+len(tc.key) {
			t.Errorf("scoped(%q, %q) is %d bytes", tc.scope, tc.key, len(k))
		}
		scope, key, ok := splitScopedIdempotencyKey(k)
		if !ok || key != tc.key || (tc.scope != long && scope != tc.scope) {
			t.Errorf("split(scoped(%q, %q)) = %q, %q, %v", tc.scope, tc.key, scope, key, ok)
		}
	}
	if scopedIdempotencyKey(long, "X1") == scopedIdempotencyKey(long+"x", "X1") {
		t.Error("two long scopes share a table key")
	}
	for _, bad := range []string{"\x00X1", strings.Repeat("s", maxIdempotencyScope+1) + "\x00X1", "a\tb\x00X1"} {
		if _, _, ok := splitScopedIdempotencyKey(bad); ok {
			t.Errorf("split(%q) accepted a malformed scope", bad)
		}
	}
}
