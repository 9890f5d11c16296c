package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestClientRetriesAcrossLeaderKillWithoutDuplicates drives a real three-node
// cluster (scripts/cluster.sh) with the Go client: concurrent increments run
// while the leader is SIGKILLed and restarted. Every increment the client
// reports as done must be applied exactly once, so the counter equals the
// number of acknowledged increments — no retry after outcome_unknown or a
// dropped connection may apply twice (the client reuses its Idempotency-Key).
// The session stores are then checked on the same cluster.
func TestClientRetriesAcrossLeaderKillWithoutDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	script := clusterScript(t, t.TempDir(), 21080, 21180, "failover-test-key-0123")
	out := script("start")
	leader := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "leader:" {
			leader = strings.TrimPrefix(f[1], "n")
		}
	}
	if leader == "" {
		t.Fatalf("no leader in cluster.sh output")
	}

	c, err := client.New(client.Config{
		Endpoints: []string{"http://127.0.0.1:21081", "http://127.0.0.1:21082", "http://127.0.0.1:21083"},
		APIKey:    "failover-test-key-0123",
		Timeout:   3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var acked, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := c.Incr(ctx, "failover-counter", 1)
				cancel()
				if err != nil {
					failed.Add(1) // not acknowledged: may or may not have applied
					continue
				}
				acked.Add(1)
			}
		}()
	}
	waitAcked := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for acked.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d increments acknowledged", acked.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(100)
	script("kill", leader)
	before := acked.Load()
	waitAcked(before + 100) // increments continue through the new leader
	script("restart", leader)
	waitAcked(acked.Load() + 50)
	close(stop)
	wg.Wait()

	if failed.Load() > 0 {
		t.Fatalf("%d increments failed despite retries across nodes", failed.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	it, err := c.Get(ctx, "failover-counter")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(it.Value)), itoa(acked.Load()); got != want {
		t.Fatalf("counter = %s after %s acknowledged increments: a retried increment was applied twice or lost", got, want)
	}
	t.Logf("counter %s = acknowledged increments, across a leader kill and restart", itoa(acked.Load()))

	t.Run("session stores", func(t *testing.T) {
		sessionStoresOnCluster(t, script, []string{"http://127.0.0.1:21081", "http://127.0.0.1:21082", "http://127.0.0.1:21083"}, "failover-test-key-0123")
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
