package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// mustSet writes through nd, repeating the (idempotent) write like a client
// would when its outcome is unknown or no leader is available yet.
func mustSet(t *testing.T, nd *testNode, key, value string, ttl time.Duration) SetResult {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := nd.store.Set(ctxTimeout(t, 5*time.Second), key, []byte(value), ttl)
		if err == nil {
			return res
		}
		if !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			t.Fatalf("set %s on %s: %v", key, nd.id, err)
		}
		t.Logf("set %s on %s: %v; retrying", key, nd.id, err)
	}
}

func mustGet(t *testing.T, nd *testNode, key string) Item {
	t.Helper()
	it, err := nd.store.Get(ctxTimeout(t, 10*time.Second), key, Linearizable)
	if err != nil {
		t.Fatalf("get %s on %s: %v", key, nd.id, err)
	}
	return it
}

func TestWriteOnFollowerIsForwardedAndReadEverywhere(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	f := c.followers(leader)[0]

	res := mustSet(t, f, "session-usr_abc123", `{"userId":"usr_abc123"}`, 0)
	if !res.Created || res.Version == 0 || !res.ExpiresAt.IsZero() {
		t.Fatalf("first set: %+v", res)
	}
	res2 := mustSet(t, f, "session-usr_abc123", `{"userId":"usr_abc123","n":2}`, 0)
	if res2.Created || res2.Version <= res.Version {
		t.Fatalf("replace: %+v after %+v", res2, res)
	}
	for _, nd := range c.nodes {
		it := mustGet(t, nd, "session-usr_abc123")
		if string(it.Value) != `{"userId":"usr_abc123","n":2}` || it.Version != res2.Version {
			t.Fatalf("%s read %q v%d, want v%d", nd.id, it.Value, it.Version, res2.Version)
		}
	}
	del, err := f.store.Delete(ctxTimeout(t, 5*time.Second), "session-usr_abc123")
	if err != nil || !del.Deleted {
		t.Fatalf("delete: %+v %v", del, err)
	}
	del, err = leader.store.Delete(ctxTimeout(t, 5*time.Second), "session-usr_abc123")
	if err != nil || del.Deleted {
		t.Fatalf("second delete: %+v %v", del, err)
	}
	for _, nd := range c.nodes {
		if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "session-usr_abc123", Linearizable); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after delete: %v", nd.id, err)
		}
	}
}

func TestLeaderKillKeepsAcknowledgedWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	acked := map[string]string{}
	for i := 0; i < 30; i++ {
		nd := c.nodes[i%3]
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf(`{"i":%d}`, i)
		mustSet(t, nd, k, v, 0)
		acked[k] = v
	}
	killed := time.Now()
	old.stop()
	nl := c.leader()
	t.Logf("failover: new leader %s ready %s after killing %s", nl.id, time.Since(killed).Round(time.Millisecond), old.id)

	for _, nd := range c.running() {
		k := "after-" + nd.id
		mustSet(t, nd, k, `"ok"`, 0)
		acked[k] = `"ok"`
	}
	for _, nd := range c.running() {
		for k, v := range acked {
			if it := mustGet(t, nd, k); string(it.Value) != v {
				t.Fatalf("%s: %s = %q, want %q", nd.id, k, it.Value, v)
			}
		}
	}
	// The old leader comes back from disk and catches up.
	c.restart(old)
	waitFor(t, 10*time.Second, "old leader to catch up", func() bool {
		return old.store.AppliedIndex() >= nl.store.AppliedIndex()
	})
	for k, v := range acked {
		if it := mustGet(t, old, k); string(it.Value) != v {
			t.Fatalf("restarted %s: %s = %q, want %q", old.id, k, it.Value, v)
		}
	}
}

func TestRestartWholeClusterFromDisk(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 64; cfg.TrailingLogs = 16 })
	c.leader()
	acked := map[string]string{}
	for i := 0; i < 200; i++ {
		k, v := fmt.Sprintf("key-%03d", i%150), fmt.Sprintf(`{"v":%d}`, i)
		mustSet(t, c.nodes[i%3], k, v, 0)
		acked[k] = v
	}
	// A follower misses writes while down, then rejoins from its data dir.
	f := c.followers(c.leader())[0]
	f.stop()
	for i := 0; i < 100; i++ {
		k, v := fmt.Sprintf("late-%03d", i), fmt.Sprintf("%d", i)
		mustSet(t, c.running()[i%2], k, v, 0)
		acked[k] = v
	}
	l := c.leader()
	if err := l.store.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	c.restart(f)
	waitFor(t, 15*time.Second, "restarted follower to catch up (snapshot install)", func() bool {
		return f.store.AppliedIndex() >= l.store.AppliedIndex()
	})
	hash := l.store.StateHash()
	if got := f.store.StateHash(); got != hash {
		t.Fatalf("follower state hash %s != leader %s", got, hash)
	}

	// Every node stops; all come back and keep every acknowledged write.
	for _, nd := range c.nodes {
		nd.stop()
	}
	for _, nd := range c.nodes {
		c.restart(nd)
	}
	c.leader()
	for _, nd := range c.nodes {
		for k, v := range acked {
			if it := mustGet(t, nd, k); string(it.Value) != v {
				t.Fatalf("%s after full restart: %s = %q, want %q", nd.id, k, it.Value, v)
			}
		}
	}
	waitFor(t, 10*time.Second, "equal state hashes", func() bool {
		h := c.nodes[0].store.StateHash()
		return c.nodes[1].store.StateHash() == h && c.nodes[2].store.StateHash() == h
	})
}

func TestTTLExpiresEverywhereAndIsRemoved(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	f := c.followers(l)[0]
	before := time.Now()
	res := mustSet(t, f, "short", `"v"`, 500*time.Millisecond)
	after := time.Now()
	mustSet(t, l, "forever", `"v"`, 0)
	if res.ExpiresAt.IsZero() {
		t.Fatal("expiresAt not set")
	}
	// The leader stamps now+ttl somewhere between our call and its answer.
	if res.ExpiresAt.Before(before.Add(500*time.Millisecond).Truncate(time.Millisecond)) || res.ExpiresAt.After(after.Add(500*time.Millisecond)) {
		t.Fatalf("expiresAt %s outside [%s, %s] + 500ms", res.ExpiresAt, before, after)
	}
	for _, nd := range c.nodes {
		began := time.Now()
		_, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "short", Linearizable)
		if err != nil && began.Before(res.ExpiresAt) && !(errors.Is(err, ErrNotFound) && time.Now().After(res.ExpiresAt)) {
			t.Fatalf("%s: read before expiry: %v", nd.id, err)
		}
	}
	// Sleeping is the behaviour under test here: wall time must pass.
	time.Sleep(time.Until(res.ExpiresAt))
	for _, nd := range c.nodes {
		for _, level := range []ReadLevel{Linearizable, Stale} {
			if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "short", level); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s level %d: expired key read: %v", nd.id, level, err)
			}
		}
	}
	deadline := res.ExpiresAt.Add(time.Second)
	waitFor(t, time.Until(deadline), "physical removal within 1s of expiry on every node", func() bool {
		for _, nd := range c.nodes {
			if _, ok := nd.store.fsm.Get("short", 0); ok {
				return false
			}
		}
		return true
	})
	for _, nd := range c.nodes {
		if _, ok := nd.store.fsm.Get("forever", 0); !ok {
			t.Fatalf("%s lost a key without TTL", nd.id)
		}
	}
}

// An isolated old leader must not serve a linearizable read from its own state
// after the majority has moved on.
func TestIsolatedLeaderRefusesStaleRead(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	mustSet(t, old, "probe", `"old"`, 0)

	c.isolate(old)
	var nl *testNode
	waitFor(t, 15*time.Second, "a new leader in the majority", func() bool {
		for _, nd := range c.followers(old) {
			if nd.store.IsLeader() && nd.store.readyTerm.Load() != 0 {
				nl = nd
				return true
			}
		}
		return false
	})
	mustSet(t, nl, "probe", `"new"`, 0)
	if err := nl.store.Ready(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("new leader not ready: %v", err)
	}
	if err := old.store.Ready(ctxTimeout(t, time.Second)); err == nil {
		t.Fatal("isolated old leader reports ready")
	}

	it, err := old.store.Get(ctxTimeout(t, 2*time.Second), "probe", Linearizable)
	if err == nil {
		t.Fatalf("isolated old leader answered a linearizable read: %q", it.Value)
	}
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoLeader) {
		t.Fatalf("isolated read: want ErrTimeout or ErrNoLeader, got %v", err)
	}
	// A write there must not be reported as a success either.
	if _, err := old.store.Set(ctxTimeout(t, 2*time.Second), "probe", []byte(`"lost"`), 0); err == nil {
		t.Fatal("isolated old leader acknowledged a write")
	}

	c.heal()
	waitFor(t, 15*time.Second, "old leader to rejoin", func() bool {
		_, id := old.store.raft.LeaderWithID()
		return id != "" && string(id) != old.id
	})
	waitFor(t, 15*time.Second, "old leader ready again", func() bool {
		return old.store.Ready(ctxTimeout(t, time.Second)) == nil
	})
	for _, nd := range c.nodes {
		it := mustGet(t, nd, "probe")
		if string(it.Value) != `"new"` && string(it.Value) != `"lost"` {
			t.Fatalf("%s: probe = %s", nd.id, it.Value)
		}
	}
}
