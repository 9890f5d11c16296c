package store

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// retryable reports whether a client would repeat the request as is.
func retryable(err error) bool {
	return errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrTimeout)
}

func TestConcurrentIfMatchWritersExactlyOneWins(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	fs := c.followers(l)
	base := mustSet(t, l, "doc", `{"v":0}`, 0)
	for round := 0; round < 5; round++ {
		cur := mustGet(t, l, "doc").Version
		if round == 0 && cur != base.Version {
			t.Fatalf("version %d, want %d", cur, base.Version)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, nd := range []*testNode{fs[0], fs[1]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = nd.store.Put(ctxTimeout(t, 10*time.Second), "doc", fmt.Appendf(nil, `{"by":%d}`, i), 0, false, WriteOptions{IfMatch: &cur})
			}()
		}
		wg.Wait()
		ok, mismatched := 0, 0
		for _, err := range errs {
			var ce *ConditionError
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrVersionMismatch) && errors.As(err, &ce) && ce.CurrentVersion > cur:
				mismatched++
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if ok != 1 || mismatched != 1 {
			t.Fatalf("round %d: %d succeeded, %d mismatched (%v), want 1 and 1", round, ok, mismatched, errs)
		}
	}
}

func TestConcurrentCreateOnlyHasOneWinner(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	const n = 50
	var wins, exists atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := c.nodes[i%3]
			res, err := nd.store.Put(ctxTimeout(t, 10*time.Second), "lock", fmt.Appendf(nil, `"owner-%d"`, i), 5*time.Second, false, WriteOptions{IfAbsent: true})
			switch {
			case err == nil && res.Created:
				wins.Add(1)
			case errors.Is(err, ErrAlreadyExists):
				exists.Add(1)
			default:
				t.Errorf("creator %d: %+v %v", i, res, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || exists.Load() != n-1 {
		t.Fatalf("%d winners, %d already_exists; want 1 and %d", wins.Load(), exists.Load(), n-1)
	}
}

func TestConcurrentIncrIsExact(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	const workers, each = 20, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := c.nodes[w%3]
			for i := 0; i < each; i++ {
				// An idempotency key makes a retry after an unknown outcome safe.
				opts := WriteOptions{IdempotencyKey: fmt.Sprintf("w%d-i%d", w, i)}
				for {
					_, err := nd.store.Incr(ctxTimeout(t, 10*time.Second), "hits", 1, 0, opts)
					if err == nil {
						break
					}
					if !retryable(err) {
						t.Errorf("worker %d incr %d: %v", w, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, nd := range c.nodes {
		if it := mustGet(t, nd, "hits"); string(it.Value) != "1000" {
			t.Fatalf("%s: hits = %s, want 1000", nd.id, it.Value)
		}
	}
}

func TestTouchedSessionOutlivesOriginalTTLAcrossLeaderKill(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	orig := mustSet(t, c.followers(l)[0], "session", `{"u":1}`, 1500*time.Millisecond)
	var touched SetResult
	var err error
	for {
		touched, err = c.followers(l)[1].store.Touch(ctxTimeout(t, 5*time.Second), "session", 4*time.Second, WriteOptions{})
		if err == nil || !retryable(err) {
			break
		}
	}
	if err != nil || touched.Version <= orig.Version || !touched.ExpiresAt.After(orig.ExpiresAt) {
		t.Fatalf("touch: %+v %v (original %+v)", touched, err, orig)
	}
	l.stop() // kill the leader between the refresh and the original expiry
	nl := c.leader()
	// Sleeping is the behaviour under test: wall time must pass the original expiry.
	time.Sleep(time.Until(orig.ExpiresAt.Add(100 * time.Millisecond)))
	for _, nd := range c.running() {
		it := mustGet(t, nd, "session")
		if it.Version != touched.Version || !it.ExpiresAt.Equal(touched.ExpiresAt) || string(it.Value) != `{"u":1}` {
			t.Fatalf("%s after original expiry: %+v, want version %d expiring %s", nd.id, it, touched.Version, touched.ExpiresAt)
		}
	}
	time.Sleep(time.Until(touched.ExpiresAt))
	for _, nd := range c.running() {
		if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "session", Linearizable); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after new expiry: %v", nd.id, err)
		}
	}
	if _, err := nl.store.Touch(ctxTimeout(t, 5*time.Second), "session", time.Second, WriteOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("touch of expired session: %v, want ErrNotFound", err)
	}
}

func TestListPaginationUnderConcurrentWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	var stable []string
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("p/%03d", i*2)
		stable = append(stable, k)
		mustSet(t, c.nodes[i%3], k, `1`, 0)
	}
	mustSet(t, l, "q/outside", `1`, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := c.nodes[w]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Churn between and around the stable keys: odd numbers, and
				// rewrites of stable keys (they must still appear once).
				k := fmt.Sprintf("p/%03d", (i*7+w)%120|1)
				if i%3 == 0 {
					nd.store.Delete(ctxTimeout(t, 5*time.Second), k)
				} else {
					nd.store.Set(ctxTimeout(t, 5*time.Second), k, []byte(`2`), 0)
				}
				if i%5 == 0 {
					nd.store.Set(ctxTimeout(t, 5*time.Second), stable[(i+w)%len(stable)], []byte(`3`), 0)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	for pass, level := range []ReadLevel{Linearizable, Stale} {
		var seen []string
		after := ""
		for page := 0; ; page++ {
			nd := c.nodes[page%3]
			res, _, err := nd.store.List(ctxTimeout(t, 10*time.Second), ListRequest{Prefix: "p/", After: after, Limit: 7, ReadOptions: ReadOptions{Level: level}})
			if err != nil {
				t.Fatalf("pass %d page %d on %s: %v", pass, page, nd.id, err)
			}
			for _, it := range res.Items {
				seen = append(seen, it.Key)
			}
			if !res.More {
				break
			}
			after = res.Items[len(res.Items)-1].Key
		}
		if !sort.StringsAreSorted(seen) {
			t.Fatalf("pass %d: keys out of order: %v", pass, seen)
		}
		count := map[string]int{}
		for i, k := range seen {
			count[k]++
			if i > 0 && seen[i-1] == k {
				t.Fatalf("pass %d: %s repeated", pass, k)
			}
		}
		for _, k := range stable {
			if count[k] != 1 {
				t.Fatalf("pass %d: stable key %s seen %d times", pass, k, count[k])
			}
		}
	}
}

func TestMinIndexReadOnFollowerSeesWriteMadeElsewhere(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	fs := c.followers(l)
	for i := 0; i < 20; i++ {
		writer, reader := fs[i%2], fs[(i+1)%2]
		if i%3 == 0 {
			writer = l
		}
		v := fmt.Sprintf(`{"n":%d}`, i)
		res := mustSet(t, writer, "ryw", v, 0)
		if res.Index == 0 || res.Index != res.Version {
			t.Fatalf("write index %d version %d", res.Index, res.Version)
		}
		it, info, err := reader.store.Read(ctxTimeout(t, 5*time.Second), "ryw", ReadOptions{Level: Stale, MinIndex: res.Index})
		if err != nil || string(it.Value) != v || info.AppliedIndex < res.Index || !info.Follower {
			t.Fatalf("stale minIndex read on %s: %+v %+v %v, want %s at index >= %d", reader.id, it, info, err, v, res.Index)
		}
	}
	// An index nobody has reached times out with ErrIndexNotReached.
	_, _, err := fs[0].store.Read(ctxTimeout(t, 200*time.Millisecond), "ryw", ReadOptions{Level: Stale, MinIndex: 1 << 40})
	if !errors.Is(err, ErrIndexNotReached) {
		t.Fatalf("unreachable minIndex: %v, want ErrIndexNotReached", err)
	}
}

func TestIdempotentRetryThroughAnotherNodeAfterLeaderKillAppliesOnce(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 32; cfg.TrailingLogs = 8 })
	l := c.leader()
	opts := WriteOptions{IdempotencyKey: "charge-42", Fingerprint: [32]byte{1}}

	// The first attempt reaches the leader and commits.
	first, err := l.store.Incr(ctxTimeout(t, 5*time.Second), "charges", 1, 0, opts)
	if err != nil || first.Value != 1 {
		t.Fatalf("first incr: %+v %v", first, err)
	}
	// Enough traffic to force snapshots, so the dedup entry also travels
	// through snapshot and restore.
	for i := 0; i < 80; i++ {
		mustSet(t, l, fmt.Sprintf("fill%d", i%5), `1`, 0)
	}
	l.stop() // the client never saw the answer; the leader is gone
	c.leader()

	for _, nd := range c.running() {
		var res IncrResult
		for {
			res, err = nd.store.Incr(ctxTimeout(t, 5*time.Second), "charges", 1, 0, opts)
			if err == nil || !retryable(err) {
				break
			}
		}
		if err != nil || res.Value != 1 || res.Version != first.Version || !res.Created {
			t.Fatalf("retry via %s: %+v %v, want the original %+v", nd.id, res, err, first)
		}
	}
	// The same key with a different request is refused.
	if _, err := c.running()[0].store.Incr(ctxTimeout(t, 5*time.Second), "charges", 5, 0,
		WriteOptions{IdempotencyKey: "charge-42", Fingerprint: [32]byte{2}}); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("reused key: %v, want ErrIdempotencyKeyReused", err)
	}
	// The killed leader restarts from its snapshot and log and agrees.
	c.restart(l)
	waitFor(t, 10*time.Second, "restarted node to catch up", func() bool {
		return l.store.AppliedIndex() >= c.running()[0].store.AppliedIndex()
	})
	for _, nd := range c.running() {
		if it := mustGet(t, nd, "charges"); string(it.Value) != "1" {
			t.Fatalf("%s: charges = %s, want 1 (applied once)", nd.id, it.Value)
		}
	}
	res, err := l.store.Incr(ctxTimeout(t, 5*time.Second), "charges", 1, 0, opts)
	if err != nil || res.Value != 1 || res.Version != first.Version {
		t.Fatalf("retry via restarted %s: %+v %v", l.id, res, err)
	}
	waitFor(t, 10*time.Second, "equal state hashes (data and dedup table)", func() bool {
		h := c.nodes[0].store.StateHash()
		for _, nd := range c.nodes[1:] {
			if nd.store.StateHash() != h {
				return false
			}
		}
		return true
	})
}

// The leader is cut off while it holds the proposal: the client sees an unknown
// outcome, retries through another node, and the write is applied exactly once.
func TestIdempotentRetryAfterLeaderLostMidCommit(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	mustSet(t, old, "warmup", `1`, 0)
	opts := WriteOptions{IdempotencyKey: "order-7", Fingerprint: [32]byte{7}}
	c.isolate(old)
	_, err := old.store.Incr(ctxTimeout(t, 1500*time.Millisecond), "orders", 1, 0, opts)
	if err == nil || !(errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNoLeader)) {
		t.Fatalf("incr on isolated leader: %v, want outcome unknown or no leader", err)
	}
	var nl *testNode
	waitFor(t, 15*time.Second, "a new leader among the majority", func() bool {
		for _, nd := range c.followers(old) {
			if nd.store.IsLeader() && nd.store.readyTerm.Load() != 0 {
				nl = nd
				return true
			}
		}
		return false
	})
	other := c.followers(old)[0]
	if other == nl {
		other = c.followers(old)[1]
	}
	var res IncrResult
	for attempt := 0; ; attempt++ {
		res, err = other.store.Incr(ctxTimeout(t, 5*time.Second), "orders", 1, 0, opts)
		if err == nil || !retryable(err) || attempt > 5 {
			break
		}
	}
	if err != nil || res.Value != 1 {
		t.Fatalf("retry via %s: %+v %v", other.id, res, err)
	}
	c.heal()
	waitFor(t, 15*time.Second, "old leader to rejoin", func() bool {
		return old.store.AppliedIndex() >= nl.store.AppliedIndex() && !old.store.IsLeader()
	})
	for _, nd := range c.nodes {
		if it := mustGet(t, nd, "orders"); string(it.Value) != "1" {
			t.Fatalf("%s: orders = %s, want 1", nd.id, it.Value)
		}
	}
	again, err := old.store.Incr(ctxTimeout(t, 5*time.Second), "orders", 1, 0, opts)
	if err != nil || again != (IncrResult{Created: true, Value: 1, Version: res.Version, Index: again.Index}) {
		t.Fatalf("second retry via %s: %+v %v, want %+v", old.id, again, err, res)
	}
}

func TestWriteErrorsCarryCurrentVersion(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	f := c.followers(l)[0]
	res := mustSet(t, l, "k", `"text"`, 0)
	var ce *ConditionError
	zero := uint64(0)
	for _, nd := range []*testNode{l, f} { // local and forwarded
		_, err := nd.store.Put(ctxTimeout(t, 5*time.Second), "k", []byte(`1`), 0, false, WriteOptions{IfMatch: &zero})
		if !errors.As(err, &ce) || !errors.Is(err, ErrVersionMismatch) || ce.CurrentVersion != res.Version {
			t.Fatalf("%s: if-match 0: %v", nd.id, err)
		}
		_, err = nd.store.DeleteIf(ctxTimeout(t, 5*time.Second), "missing", WriteOptions{IfMatch: &zero})
		if !errors.As(err, &ce) || !errors.Is(err, ErrVersionMismatch) || ce.CurrentVersion != 0 {
			t.Fatalf("%s: delete if-match on missing: %v", nd.id, err)
		}
		if _, err = nd.store.Incr(ctxTimeout(t, 5*time.Second), "k", 1, 0, WriteOptions{}); !errors.Is(err, ErrNotAnInteger) {
			t.Fatalf("%s: incr text: %v", nd.id, err)
		}
		if _, err = nd.store.Touch(ctxTimeout(t, 5*time.Second), "missing", time.Second, WriteOptions{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: touch missing: %v", nd.id, err)
		}
	}
	for i := 0; i < 3; i++ {
		mustSet(t, c.nodes[i], fmt.Sprintf("user/7/s%d", i), `1`, 0)
	}
	del, err := f.store.DeletePrefix(ctxTimeout(t, 5*time.Second), "user/7/", WriteOptions{})
	if err != nil || del.Deleted != 3 || del.Index == 0 {
		t.Fatalf("delete prefix: %+v %v", del, err)
	}
	kept, err := f.store.Put(ctxTimeout(t, 5*time.Second), "k", []byte(`2`), 0, true, WriteOptions{})
	if err != nil || !kept.ExpiresAt.IsZero() || kept.Index != kept.Version {
		t.Fatalf("keepTtl put: %+v %v", kept, err)
	}
}
