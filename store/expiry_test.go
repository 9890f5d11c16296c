package store

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// Mass expiry: many keys expiring at the same instant are removed
// from every replica within a bound that one commit per batch cannot meet.
// Every raft message a node sends is delayed by linkDelay, so each commit
// costs at least linkDelay whatever the machine's speed: proposing the 40
// batches one commit at a time takes at least 40 x linkDelay = 6 s, over the
// bound whatever the machine. The clocks jump an hour past the keys' expiry,
// so the earliest due key is past ExpireBudget from the start and the loop keeps several
// commands in flight, sharing commits between batches (ideally 10 commits,
// 1.5 s, with the default pipeline of 4).
func TestMassExpiryRemovedEverywhereWithinBound(t *testing.T) {
	const (
		keys      = 400
		batch     = 10
		linkDelay = 150 * time.Millisecond
		bound     = 5 * time.Second
	)
	var offset atomic.Int64 // added to every node's clock
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.ExpireBatch = batch
		// Room for the slow links: a leader must not step down over them.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 800*time.Millisecond
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		wrap := cfg.WrapRaftLayer
		cfg.WrapRaftLayer = func(l raft.StreamLayer) raft.StreamLayer {
			return &slowLayer{StreamLayer: wrap(l), delay: linkDelay}
		}
	})
	l := c.leader()

	// Every key gets the same absolute expiry, an hour ahead; the clocks then
	// jump past it at once, so the load takes as long as it needs.
	expiresAt := time.Now().Add(time.Hour).UnixMilli()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, 1)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < keys; i = int(next.Add(1) - 1) {
				cmd := fsm.Command{Op: fsm.OpSet, Key: fmt.Sprintf("exp-%04d", i), Value: []byte(`"v"`),
					ExpiresAt: expiresAt, Now: l.store.nowMs()}
				if _, err := l.store.applyLocal(ctxTimeout(t, 10*time.Second), cmd); err != nil {
					select {
					case errs <- fmt.Errorf("set %s: %w", cmd.Key, err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	mustSet(t, l, "forever", `"v"`, 0)
	waitFor(t, 10*time.Second, "every node holds every key", func() bool {
		for _, nd := range c.nodes {
			if nd.store.fsm.Len() != keys+1 {
				return false
			}
		}
		return true
	})

	jump := time.Now()
	offset.Store(int64(time.Duration(expiresAt-jump.UnixMilli())*time.Millisecond + time.Millisecond))
	waitFor(t, 20*time.Second, "every expiring key removed on every node", func() bool {
		for _, nd := range c.nodes {
			if nd.store.fsm.Len() != 1 {
				return false
			}
		}
		return true
	})
	took := time.Since(jump)
	t.Logf("%d keys in batches of %d removed everywhere %s after they expired", keys, batch, took)
	if took > bound {
		t.Fatalf("removal took %s, want at most %s", took, bound)
	}
	for _, nd := range c.nodes {
		if _, ok := nd.store.fsm.Get("forever", 0); !ok {
			t.Fatalf("%s lost a key without TTL", nd.id)
		}
	}
}

// slowLayer delays every write on the connections a node dials, which carry
// its raft requests (AppendEntries, votes) to the other nodes.
type slowLayer struct {
	raft.StreamLayer
	delay time.Duration
}

func (l *slowLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: conn, delay: l.delay}, nil
}

type slowConn struct {
	net.Conn
	delay time.Duration
}

func (c *slowConn) Write(p []byte) (int, error) {
	time.Sleep(c.delay)
	return c.Conn.Write(p)
}

// TestExpirePlan: the loop spreads a backlog over the time left in the
// budget, one round per commit, and hurries only when it must.
func TestExpirePlan(t *testing.T) {
	const batch, minChunk, pipeline = 1000, 100, 4
	ms := time.Millisecond
	for _, tc := range []struct {
		name         string
		due          int
		left, commit time.Duration
		depth, chunk int
	}{
		{"a few due keys go at once", 7, 2000 * ms, 20 * ms, 1, 100},
		{"nothing due", 0, 2000 * ms, 20 * ms, 1, 100},
		{"mass expiry spread over the budget", 20000, 2000 * ms, 20 * ms, 1, 200},
		{"more than one batch per commit pipelines", 100000, 1000 * ms, 40 * ms, 4, 1000},
		{"two commands of 750", 60000, 1200 * ms, 30 * ms, 2, 750},
		{"budget spent", 5, 0, 20 * ms, 4, 1000},
		{"overdue", 100000, -3000 * ms, 20 * ms, 4, 1000},
		{"less than one commit left", 3000, 10 * ms, 20 * ms, 3, 1000},
		{"no commit estimate yet", 5000, 2000 * ms, 0, 1, 100},
	} {
		depth, chunk := expirePlan(tc.due, tc.left, tc.commit, batch, minChunk, pipeline)
		if depth != tc.depth || chunk != tc.chunk {
			t.Errorf("%s: expirePlan(%d, %s, %s) = %d x %d, want %d x %d", tc.name, tc.due, tc.left, tc.commit, depth, chunk, tc.depth, tc.chunk)
		}
	}
}
