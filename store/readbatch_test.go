package store

import (
	"fmt"
	"sync"
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
	before, _ := sample(t, regs[f.id], "quorumkv_forwarded_requests_total", "kind", "read_index", "result", "ok")

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
	after, _ := sample(t, regs[f.id], "quorumkv_forwarded_requests_total", "kind", "read_index", "result", "ok")
	calls := after - before
	t.Logf("%d linearizable follower reads used %v read-index calls to the leader", readers*rounds, calls)
	if calls < rounds || calls >= readers*rounds/2 {
		t.Fatalf("%v read-index calls for %d reads in %d rounds: reads are not batched", calls, readers*rounds, rounds)
	}
}
