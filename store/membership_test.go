package store

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// memberConfig gives every node an HTTP address to register and a fast
// membership monitor.
func memberConfig(c *Config) {
	c.HTTPAddr = "http://" + c.NodeID + ".test:8080"
	c.MonitorInterval = 50 * time.Millisecond
}

// addNode starts a new node with an empty data dir in join mode (it does not
// bootstrap). It is not a member until someone asks the cluster to add it.
func (c *testCluster) addNode(id string) *testNode {
	c.t.Helper()
	nd := &testNode{id: id, dataDir: c.t.TempDir(), clock: time.Now}
	nd.net = &cuttableLayer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(c.t, id)})
	if err != nil {
		c.t.Fatalf("listen: %v", err)
	}
	nd.mux, nd.addr = mux, mux.Addr()
	c.nodes = append(c.nodes, nd)
	c.openStore(nd, nil, func(cfg *Config) { memberConfig(cfg); cfg.Join = true })
	if !nd.store.Joining() {
		c.t.Fatalf("%s: fresh node in join mode is not joining", id)
	}
	return nd
}

// join adds a fresh node through via, like kvnode --join does, retrying what
// a client would retry, and returns it once it is a member.
func (c *testCluster) join(id string, via *testNode) *testNode {
	c.t.Helper()
	nd := c.addNode(id)
	c.mustJoin(via, JoinRequest{ID: id, PeerAddr: nd.addr, HTTPAddr: "http://" + id + ".test:8080"})
	return nd
}

func (c *testCluster) mustJoin(via *testNode, req JoinRequest) JoinAction {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := via.store.Join(ctxTimeout(c.t, 5*time.Second), req)
		if err == nil {
			return a
		}
		if !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			c.t.Fatalf("join %s via %s: %v", req.ID, via.id, err)
		}
	}
}

func (c *testCluster) mustRemove(via *testNode, id string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := via.store.RemoveNode(ctxTimeout(c.t, 5*time.Second), id)
		if err == nil || errors.Is(err, ErrNodeNotFound) { // not found: a retry after an unknown outcome
			return
		}
		if !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrTransferFailed) || time.Now().After(deadline) {
			c.t.Fatalf("remove %s via %s: %v", id, via.id, err)
		}
	}
}

// nodes returns via's view of the cluster by ID.
func nodesByID(t *testing.T, via *testNode) map[string]NodeInfo {
	t.Helper()
	list, err := via.store.Nodes(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatalf("nodes via %s: %v", via.id, err)
	}
	out := map[string]NodeInfo{}
	for _, n := range list {
		out[n.ID] = n
	}
	return out
}

// waitVoters waits until the configuration (as via sees it) is exactly the
// given voters and nothing else.
func (c *testCluster) waitVoters(via *testNode, ids ...string) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("voters %v", ids), func() bool {
		f := via.store.raft.GetConfiguration()
		if f.Error() != nil {
			return false
		}
		servers := f.Configuration().Servers
		if len(servers) != len(ids) {
			return false
		}
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for _, srv := range servers {
			if !want[string(srv.ID)] || srv.Suffrage != raft.Voter {
				return false
			}
		}
		return true
	})
}

func (c *testCluster) node(id string) *testNode {
	for _, nd := range c.nodes {
		if nd.id == id {
			return nd
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// writer writes distinct keys through the given nodes until stopped and
// remembers every acknowledged one.
type writer struct {
	mu    sync.Mutex
	acked map[string]string
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
	fails atomic.Int64
}

func startWriter(t *testing.T, through []*testNode) *writer {
	w := &writer{acked: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(4)
	for g := 0; g < 4; g++ {
		go w.run(t, &wg, through, g)
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	// Registered after the cluster's cleanup, so it runs first: writers stop
	// before the nodes they write through, even when the test fails early.
	t.Cleanup(func() { w.finish() })
	return w
}

// run is one writer goroutine; g keeps the goroutines' keys apart.
func (w *writer) run(t *testing.T, wg *sync.WaitGroup, through []*testNode, g int) {
	defer wg.Done()
	for i := g; ; i += 4 {
		select {
		case <-w.stop:
			return
		default:
		}
		nd := through[i%len(through)]
		k, v := fmt.Sprintf("w%05d", i), fmt.Sprintf(`{"i":%d}`, i)
		if _, err := nd.store.Set(ctxTimeout(t, 5*time.Second), k, []byte(v), 0); err != nil {
			w.fails.Add(1) // unknown or refused: not acknowledged, not checked
			continue
		}
		w.mu.Lock()
		w.acked[k] = v
		w.mu.Unlock()
	}
}

func (w *writer) finish() map[string]string {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// checkAcked reads every acknowledged key from every given node.
func checkAcked(t *testing.T, acked map[string]string, nodes ...*testNode) {
	t.Helper()
	for _, nd := range nodes {
		for k, v := range acked {
			if it := mustGet(t, nd, k); string(it.Value) != v {
				t.Fatalf("%s: %s = %s, want %s", nd.id, k, it.Value, v)
			}
		}
	}
}

func TestGrowToFiveAndShrinkToThreeUnderWrites(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	c.leader()
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	w := startWriter(t, []*testNode{n1, n2, n3})

	start := time.Now()
	c.join("n4", n2)
	c.waitVoters(n1, "n1", "n2", "n3", "n4")
	t.Logf("n4: join to voter in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	c.join("n5", c.leader())
	c.waitVoters(n3, "n1", "n2", "n3", "n4", "n5")
	t.Logf("n5: join to voter in %s", time.Since(start).Round(time.Millisecond))

	waitFor(t, 10*time.Second, "every node listed with its HTTP address and healthy", func() bool {
		nodes := nodesByID(t, c.node("n5"))
		for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
			n := nodes[id]
			if !n.Voter || n.HTTPAddr != "http://"+id+".test:8080" || !n.Probed || !n.Healthy {
				return false
			}
		}
		return len(nodes) == 5
	})

	c.mustRemove(n1, "n4")
	c.node("n4").stop()
	c.mustRemove(c.node("n5"), "n5")
	c.node("n5").stop()
	c.waitVoters(n2, "n1", "n2", "n3")

	acked := w.finish()
	if len(acked) < 20 {
		t.Fatalf("writer acknowledged only %d writes (%d failed)", len(acked), w.fails.Load())
	}
	t.Logf("%d writes acknowledged, %d not, during grow and shrink", len(acked), w.fails.Load())
	checkAcked(t, acked, n1, n2, n3)
	nodes := nodesByID(t, n3)
	if _, ok := nodes["n4"]; ok || len(nodes) != 3 {
		t.Fatalf("after shrinking: %v", nodes)
	}
	if _, ok := n1.store.fsm.NodeAddr("n4"); ok {
		t.Fatal("removed node's HTTP address is still recorded")
	}
}

func TestReplaceKilledNodeWithEmptyDisk(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	leader := c.leader()
	acked := map[string]string{}
	for i := 0; i < 50; i++ {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf(`"%d"`, i)
		mustSet(t, c.nodes[i%3], k, v, 0)
		acked[k] = v
	}
	var dead *testNode
	for _, nd := range c.followers(leader) {
		dead = nd
	}
	dead.stop()
	survivor := c.followers(leader)[0]
	if survivor == dead {
		survivor = leader
	}
	c.mustRemove(survivor, dead.id)

	start := time.Now()
	n4 := c.join("n4", survivor)
	c.waitVoters(leader, leader.id, survivor.id, "n4")
	t.Logf("replacement: join to voter in %s", time.Since(start).Round(time.Millisecond))
	for i := 50; i < 60; i++ {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf(`"%d"`, i)
		mustSet(t, n4, k, v, 0)
		acked[k] = v
	}
	checkAcked(t, acked, n4, leader, survivor)
	// The replacement is a full voter: with the old leader gone, the two
	// others still make a quorum.
	leader.stop()
	mustSet(t, n4, "after-leader-kill", `1`, 0)
	mustGet(t, survivor, "after-leader-kill")
}

func TestJoinIsIdempotentAndReplacesAddresses(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	leader := c.leader()
	f := c.followers(leader)[0]
	n4 := c.join("n4", f)
	c.waitVoters(leader, "n1", "n2", "n3", "n4")

	req := JoinRequest{ID: "n4", PeerAddr: n4.addr, HTTPAddr: "http://n4.test:8080"}
	before := leader.store.raft.LastIndex()
	if a := c.mustJoin(f, req); a != JoinUnchanged {
		t.Fatalf("second join: %s, want unchanged", a)
	}
	if a := c.mustJoin(leader, req); a != JoinUnchanged {
		t.Fatalf("third join on the leader: %s, want unchanged", a)
	}
	if after := leader.store.raft.LastIndex(); after > before+2 { // a barrier at most, never a config change
		t.Fatalf("no-op joins wrote %d entries", after-before)
	}

	req.HTTPAddr = "http://n4.example:9999"
	if a := c.mustJoin(f, req); a != JoinUpdated {
		t.Fatalf("new HTTP address: %s, want updated", a)
	}
	waitFor(t, 5*time.Second, "new HTTP address everywhere", func() bool {
		for _, nd := range c.running() {
			if a, _ := nd.store.fsm.NodeAddr("n4"); a != req.HTTPAddr {
				return false
			}
		}
		return true
	})

	// Another ID at n4's peer address is refused, also through a follower.
	_, err := f.store.Join(ctxTimeout(t, 5*time.Second), JoinRequest{ID: "n9", PeerAddr: n4.addr})
	if !errors.Is(err, ErrNodeConflict) {
		t.Fatalf("join of another ID at n4's address: %v, want ErrNodeConflict", err)
	}
	if _, err := f.store.Join(ctxTimeout(t, 5*time.Second), JoinRequest{ID: "n9"}); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("join without peer address: %v, want ErrInvalidNode", err)
	}

	// n4 moves to a new peer address, keeping its data: the same ID with a new
	// address replaces the address; it is demoted, then promoted again.
	n4.stop()
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, "n4")})
	if err != nil {
		t.Fatal(err)
	}
	n4.mux, n4.addr = mux, mux.Addr()
	n4.net = &cuttableLayer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	c.openStore(n4, nil, func(cfg *Config) { memberConfig(cfg); cfg.Join = true })
	if n4.store.Joining() {
		t.Fatal("a node with raft state must ignore join")
	}
	req.PeerAddr = n4.addr
	if a := c.mustJoin(f, req); a != JoinUpdated {
		t.Fatalf("new peer address: %s, want updated", a)
	}
	c.waitVoters(leader, "n1", "n2", "n3", "n4")
	var seen NodeInfo
	waitFor(t, 10*time.Second, "n4 at its new address "+n4.addr, func() bool {
		seen = nodesByID(t, leader)["n4"]
		if seen.PeerAddr != n4.addr {
			t.Logf("n4 seen as %+v", seen)
		}
		return seen.PeerAddr == n4.addr
	})
	mustSet(t, n4, "moved", `true`, 0)
	mustGet(t, leader, "moved")
}

func TestRemoveRefusesLastVoterAndUnknownNode(t *testing.T) {
	c := newTestCluster(t, 1, memberConfig)
	n1 := c.leader()
	if err := n1.store.RemoveNode(ctxTimeout(t, 5*time.Second), "n1"); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("removing the only voter: %v, want ErrLastVoter", err)
	}
	if err := n1.store.RemoveNode(ctxTimeout(t, 5*time.Second), "ghost"); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("removing an unknown node: %v, want ErrNodeNotFound", err)
	}
	// A non-voter does not count: n1 is still the last voter.
	n2 := c.addNode("n2")
	for _, nd := range []*testNode{n1} {
		nd.net.cut(n2.addr) // n2 never catches up, so it stays a non-voter
	}
	c.mustJoin(n1, JoinRequest{ID: "n2", PeerAddr: n2.addr})
	if err := n1.store.RemoveNode(ctxTimeout(t, 5*time.Second), "n1"); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("removing the only voter beside a non-voter: %v, want ErrLastVoter", err)
	}
	if _, err := n1.store.TransferLeader(ctxTimeout(t, 5*time.Second), "n2"); !errors.Is(err, ErrNotVoter) {
		t.Fatalf("transfer to a non-voter: %v, want ErrNotVoter", err)
	}
	c.mustRemove(n1, "n2")
	if nodes := nodesByID(t, n1); len(nodes) != 1 {
		t.Fatalf("after removing the non-voter: %v", nodes)
	}
}

func TestRemoveLeaderTransfersLeadershipFirst(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	old := c.leader()
	mustSet(t, old, "before", `1`, 0)
	via := c.followers(old)[0]
	c.mustRemove(via, old.id)
	var rest []string
	for _, nd := range c.followers(old) {
		rest = append(rest, nd.id)
	}
	c.waitVoters(via, rest...)
	if old.store.IsLeader() {
		t.Fatal("the removed leader still leads")
	}
	old.stop()
	nl := c.leader()
	if nl == old {
		t.Fatal("no new leader")
	}
	mustSet(t, via, "after", `2`, 0)
	checkAcked(t, map[string]string{"before": `1`, "after": `2`}, c.running()...)
}

func TestTransferLeader(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	old := c.leader()
	fs := c.followers(old)
	got, err := fs[1].store.TransferLeader(ctxTimeout(t, 10*time.Second), fs[0].id)
	if err != nil || got != fs[0].id {
		t.Fatalf("transfer to %s: %q %v", fs[0].id, got, err)
	}
	if nl := c.leader(); nl != fs[0] {
		t.Fatalf("leader is %s, want %s", nl.id, fs[0].id)
	}
	got, err = old.store.TransferLeader(ctxTimeout(t, 10*time.Second), "")
	if err != nil || got == "" || got == fs[0].id {
		t.Fatalf("transfer to anyone: %q %v", got, err)
	}
	if _, err := old.store.TransferLeader(ctxTimeout(t, 5*time.Second), "ghost"); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("transfer to an unknown node: %v", err)
	}
	l := c.leader()
	if got, err := l.store.TransferLeader(ctxTimeout(t, 5*time.Second), l.id); err != nil || got != l.id {
		t.Fatalf("transfer to the current leader: %q %v", got, err)
	}
}

func TestPromotionWaitsForCatchUp(t *testing.T) {
	c := newTestCluster(t, 3, memberConfig)
	leader := c.leader()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				mustSet(t, c.nodes[(g+i)%3], fmt.Sprintf("p%d-%d", g, i), `"x"`, 0)
			}
		}()
	}
	wg.Wait()
	n4 := c.addNode("n4")
	for _, nd := range c.nodes[:3] {
		nd.net.cut(n4.addr) // no raft traffic reaches n4: it cannot catch up
	}
	c.mustJoin(c.followers(leader)[0], JoinRequest{ID: "n4", PeerAddr: n4.addr, HTTPAddr: "http://n4.test:8080"})
	target := leader.store.AppliedIndex()

	// Many monitor rounds pass with n4 probed but behind: it stays a non-voter.
	waitFor(t, 10*time.Second, "n4 probed", func() bool {
		return nodesByID(t, c.nodes[1])["n4"].Probed
	})
	deadline := time.Now().Add(1 * time.Second)
	for time.Now().Before(deadline) {
		if n := nodesByID(t, leader)["n4"]; n.Voter {
			t.Fatalf("n4 promoted while %d entries behind", target-n.AppliedIndex)
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	c.heal()
	var promotedAt uint64
	waitFor(t, 20*time.Second, "n4 promoted", func() bool {
		f := leader.store.raft.GetConfiguration()
		if f.Error() != nil {
			return false
		}
		for _, srv := range f.Configuration().Servers {
			if srv.ID == "n4" && srv.Suffrage == raft.Voter {
				promotedAt = n4.store.AppliedIndex()
				return true
			}
		}
		return false
	})
	t.Logf("n4 caught up %d entries and was promoted %s after the link healed", target, time.Since(start).Round(time.Millisecond))
	if promotedAt+leader.store.cfg.PromoteLag < target {
		t.Fatalf("n4 promoted at applied index %d, more than %d behind %d", promotedAt, leader.store.cfg.PromoteLag, target)
	}
}
