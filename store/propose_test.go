package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWritesShareLogEntries: concurrent writes, on the leader and
// forwarded from a follower, are committed in fewer raft entries than writes,
// and batching changes nothing a client can see: every write is on every
// node, and writes racing on one key still get distinct versions.
func TestConcurrentWritesShareLogEntries(t *testing.T) {
	c, regs := newMeteredCluster(t)
	leader := c.leader()
	f := c.followers(leader)[0]

	const writers, each, hotWriters = 48, 20, 16
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+hotWriters*each)
	var mu sync.Mutex
	hotVersions := map[uint64]int{}
	for w := range writers {
		nd := leader
		if w%2 == 1 {
			nd = f
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("w%02d-%02d", w, i)
				if _, err := nd.store.Set(ctxTimeout(t, 10*time.Second), key, []byte(fmt.Sprint(i)), 0); err != nil {
					errs <- fmt.Errorf("set %s via %s: %w", key, nd.id, err)
				}
			}
		}()
	}
	for range hotWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				res, err := leader.store.Set(ctxTimeout(t, 10*time.Second), "hot", []byte(fmt.Sprint(i)), 0)
				if err != nil {
					errs <- fmt.Errorf("set hot: %w", err)
					continue
				}
				mu.Lock()
				hotVersions[res.Version]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for v, n := range hotVersions {
		if n != 1 {
			t.Fatalf("%d acknowledged writes to one key got version %d: batching merged them", n, v)
		}
	}
	entries, sum := histogram(t, regs[leader.id], "quorumkv_write_batch_size")
	t.Logf("%v writes proposed in %v raft entries", sum, entries)
	if sum < writers*each+hotWriters*each {
		t.Fatalf("write batch sizes sum to %v, want at least the %d writes", sum, writers*each+hotWriters*each)
	}
	if entries > sum*3/4 {
		t.Fatalf("%v writes took %v entries: concurrent writes are not batched", sum, entries)
	}

	waitFor(t, 10*time.Second, "every node applied every write", func() bool {
		return leader.store.AppliedIndex() == f.store.AppliedIndex() &&
			leader.store.AppliedIndex() == c.followers(leader)[1].store.AppliedIndex()
	})
	for _, nd := range c.running() {
		for w := range writers {
			key := fmt.Sprintf("w%02d-%02d", w, each-1)
			it, err := nd.store.Get(ctxTimeout(t, 5*time.Second), key, Stale)
			if err != nil || string(it.Value) != fmt.Sprint(each-1) {
				t.Fatalf("%s on %s: %q, %v", key, nd.id, it.Value, err)
			}
		}
		if nd.store.StateHash() != leader.store.StateHash() {
			t.Fatalf("%s state hash differs from the leader's", nd.id)
		}
	}
}
