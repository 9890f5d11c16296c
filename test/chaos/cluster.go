package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"
)

// cluster is a running scenario's nodes, network and fault log, as the
// nemesis sees them.
type cluster struct {
	t     testing.TB
	nw    *network
	nodes []*node
	api   *apiClient
	start time.Time
	rng   *rand.Rand
	// artifacts is the scenario's artifacts directory.
	artifacts string

	mu     sync.Mutex
	faults []*fault
	probe  *clockProbe // clock.go; nil unless the clock nemesis ran
}

// fault is one injected fault and what the guard requires of it.
type fault struct {
	Kind   string   `json:"kind"`
	Nodes  []string `json:"nodes"`
	Start  int64    `json:"startNs"`
	End    int64    `json:"endNs"` // when the fault was healed
	Detail string   `json:"detail,omitempty"`
	// requirements checked by the guard after the run
	needTermRise   bool     // the majority elected a new leader during the fault
	needFailedOn   []string // requests to these nodes failed during the fault
	needKilled     []string // these nodes' processes died of SIGKILL
	needMembership bool     // the node left the configuration, then was listed as a voter again
	needRejoin     bool     // the same, without the membership scenario's need to remove a leader
	needRefused    bool     // the node refused to start on its damaged data dir (corrupt.go)
	refused        bool
	sawAbsent      bool
	sawVoter       bool
	removedLeader  bool
	// clock faults (clock.go): leadership left the node whose clock jumped
	// (and how fast), and a transfer to a skewed node was refused.
	needLeaderMoved     bool
	leaderMovedAfter    time.Duration
	needTransferRefused bool
	transferRefused     bool
	// disk faults (disk.go): what power losses dropped (reported, not
	// required: a node may have had nothing un-synced at that instant), and
	// a stall held syncs
	diskLost       int64
	needStalled    bool
	needDiskReady  bool // /readyz answered 503 reason disk
	diskReady      bool
	stalledSyncs   int64
	Verified       bool     `json:"verified"`
	GuardProblems  []string `json:"guardProblems,omitempty"`
	killedObserved []string
}

func (c *cluster) since() int64 { return int64(time.Since(c.start)) }

func (c *cluster) logf(format string, args ...any) {
	c.t.Logf("[%6.2fs] "+format, append([]any{time.Since(c.start).Seconds()}, args...)...)
}

// begin records the start of a fault.
func (c *cluster) begin(kind string, nodes ...*node) *fault {
	f := &fault{Kind: kind, Start: c.since()}
	for _, n := range nodes {
		f.Nodes = append(f.Nodes, n.id)
	}
	c.mu.Lock()
	c.faults = append(c.faults, f)
	c.mu.Unlock()
	c.logf("fault %s on %v", kind, f.Nodes)
	return f
}

func (c *cluster) end(f *fault) {
	f.End = c.since()
	c.logf("healed %s on %v", f.Kind, f.Nodes)
}

func (c *cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// statuses asks every running, unpaused node for its status.
func (c *cluster) statuses() map[string]nodeStatus {
	out := map[string]nodeStatus{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if st, err := c.api.status(ctx, n.httpBase()); err == nil {
				mu.Lock()
				out[n.id] = st
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return out
}

// leader waits (up to timeout) for a node that reports itself leader with the
// highest term any node reports, and returns it.
func (c *cluster) leader(timeout time.Duration) (*node, uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		sts := c.statuses()
		var best *node
		var term, top uint64
		for id, st := range sts {
			top = max(top, st.Term)
			if st.State == "Leader" && st.Term >= term {
				best, term = c.node(id), st.Term
			}
		}
		if best != nil && term == top {
			return best, term, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("no leader within %s (statuses %v)", timeout, sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealthy waits until every node answers and all agree on one leader.
func (c *cluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		sts := c.statuses()
		leaders := map[string]bool{}
		for _, st := range sts {
			leaders[st.LeaderID] = true
		}
		if len(sts) == len(c.nodes) && len(leaders) == 1 && !leaders[""] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy within %s: %v", timeout, sts)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// others returns the nodes other than n.
func (c *cluster) others(n *node) []*node {
	var out []*node
	for _, m := range c.nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

func hostsOf(ns []*node) []*host {
	out := make([]*host, len(ns))
	for i, n := range ns {
		out[i] = n.host
	}
	return out
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// healEverything restarts stopped nodes, resumes paused ones and removes
// every partition. The nemesis normally heals each fault itself; this is the
// backstop before the final checks.
func (c *cluster) healEverything() {
	if err := c.nw.healAll(); err != nil {
		c.t.Errorf("heal partitions: %v", err)
	}
	for _, n := range c.nodes {
		switch {
		case n.proc.Paused():
			n.resume()
		case !n.running():
			if err := n.start(); err != nil {
				c.t.Errorf("restart %s: %v", n.id, err)
			}
		}
	}
}

func sortedIDs(ns []*node) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.id
	}
	sort.Strings(ids)
	return ids
}

// observeKilled notes that n's process is verified to have died of SIGKILL.
func (f *fault) observeKilled(n *node) {
	if n.lastExitKilled() {
		f.killedObserved = append(f.killedObserved, n.id)
	}
}

// holdUntilNewLeader keeps a fault on the leader l (of term) in place for at
// least hold, and then until another node leads in a higher term, at most
// limit in all. Elections take longer on a loaded machine (and pre-vote can
// need more than one round); a fault healed before one completed would prove
// nothing.
func (c *cluster) holdUntilNewLeader(l *node, term uint64, hold, limit time.Duration) {
	began := time.Now()
	sleep(context.Background(), hold)
	for time.Since(began) < limit {
		for id, st := range c.statuses() {
			if id != l.id && st.State == "Leader" && st.Term > term {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.logf("no new leader within %s of the fault on %s", limit, l.id)
}
