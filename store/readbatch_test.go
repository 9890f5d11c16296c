package store

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFollowerReadsShareReadIndexCalls: concurrent linearizable reads on a
// follower are batched into far fewer read-index calls to the leader than
// there are reads, and every read still sees the write acknowledged before
// it started.
func TestFollowerReadsShareReadIndexCalls(t *testing.T) {
	c, regs := newMeteredCluster(t)
	leader := c.leader()
	f := c.followers(leader)[0]
	// A batch with GETs asks with methodReadIndexGet, others with methodReadIndex.
	calls := func() float64 {
		plain, _ := sample(t, regs[f.id], "quorumkv_forwarded_requests_total", "kind", "read_index", "result", "ok")
		gets, _ := sample(t, regs[f.id], "quorumkv_forwarded_requests_total", "kind", "read_index_get", "result", "ok")
		return plain + gets
	}
	before := calls()

	const readers, rounds = 32, 5
	for round := range rounds {
		want := fmt.Sprintf(`{"round":%d}`, round)
		mustSet(t, leader, "batched", want, 0)
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				it, err := f.store.Get(ctxTimeout(t, 10*time.Second), "batched", Linearizable)
				switch {
				case err != nil:
					errs <- err
				case string(it.Value) != want:
					errs <- fmt.Errorf("read %s after %s was acknowledged", it.Value, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	used := calls() - before
	t.Logf("%d linearizable follower reads used %v read-index calls to the leader", readers*rounds, used)
	if used < rounds || used >= readers*rounds/2 {
		t.Fatalf("%v read-index calls for %d reads in %d rounds: reads are not batched", used, readers*rounds, rounds)
	}
}

// TestConcurrentFollowerReadsSeeAcknowledgedWrites: while writers on all
// three nodes keep acknowledging new values of their own keys, concurrent
// linearizable GETs on a follower (batched into shared read-index calls, some
// answered by the leader because the follower is behind) never return a value
// older than the last one acknowledged before the read started, whichever
// node acknowledged it.
func TestConcurrentFollowerReadsSeeAcknowledgedWrites(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	f := c.followers(leader)[0]
	writers := c.running()
	acked := make([]atomic.Int64, len(writers)) // last acknowledged counter per writer's key
	for w := range writers {
		mustSet(t, leader, fmt.Sprintf("pipe-%d", w), "0", 0)
	}

	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w, nd := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int64(1); time.Now().Before(deadline); n++ {
				if _, err := nd.store.Set(ctxTimeout(t, 10*time.Second), fmt.Sprintf("pipe-%d", w), []byte(strconv.FormatInt(n, 10)), 0); err != nil {
					errs <- fmt.Errorf("write %d through %s: %w", n, nd.id, err)
					return
				}
				acked[w].Store(n)
			}
		}()
	}
	var reads atomic.Int64
	for r := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				w := (r + i) % len(writers)
				floor := acked[w].Load()
				it, err := f.store.Get(ctxTimeout(t, 10*time.Second), fmt.Sprintf("pipe-%d", w), Linearizable)
				if err != nil {
					errs <- fmt.Errorf("follower read: %w", err)
					return
				}
				got, _ := strconv.ParseInt(string(it.Value), 10, 64)
				if got < floor {
					errs <- fmt.Errorf("follower read pipe-%d = %d after %d was acknowledged by %s", w, got, floor, writers[w].id)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d follower reads, writes acknowledged per node: %d %d %d", reads.Load(), acked[0].Load(), acked[1].Load(), acked[2].Load())
	if reads.Load() < 100 {
		t.Fatalf("only %d follower reads completed", reads.Load())
	}
}
