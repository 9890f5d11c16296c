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
