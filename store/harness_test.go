package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// testCluster is an in-process cluster on real TCP (127.0.0.1:0), wired as
// cmd/kvnode wires a node, with a hook on every node's raft layer to cut links.
type testCluster struct {
	t     testing.TB
	nodes []*testNode
}

type testNode struct {
	id      string
	dataDir string
	addr    string // advertised peer address, stable across restarts
	mux     *transport.Mux
	store   *Store
	net     *cuttableLayer
	clock   func() time.Time
}

// fastConfig returns raft timings short enough for tests yet stable under -race
// on a 2-core machine.
func fastConfig() Config {
	return Config{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		ExpireInterval:     50 * time.Millisecond,
		// Plaintext peer ports (InsecurePeer): membership RPCs come from
		// unauthenticated connections (TestChangesNeedAuthenticatedPeer
		// turns AllowUnauthenticatedPeers off).
		InsecurePeer:              true,
		AllowUnauthenticatedPeers: true,
	}
}

func newTestCluster(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c, peers := newListeningCluster(t, "n", n)
	for _, nd := range c.nodes {
		c.openStore(nd, peers, tweak)
	}
	return c
}

// newListeningCluster makes n nodes named prefix1..prefixN, each with a data
// dir and a listening peer port but no store yet, and stops them all when
// the test ends.
func newListeningCluster(t testing.TB, prefix string, n int) (*testCluster, []Peer) {
	t.Helper()
	c := &testCluster{t: t}
	var peers []Peer
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.stop()
		}
	})
	for i := 1; i <= n; i++ {
		nd := &testNode{id: fmt.Sprintf("%s%d", prefix, i), dataDir: t.TempDir(), clock: time.Now}
		nd.net = &cuttableLayer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
		mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, nd.id)})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		nd.mux, nd.addr = mux, mux.Addr()
		peers = append(peers, Peer{ID: nd.id, Addr: nd.addr})
		c.nodes = append(c.nodes, nd)
	}
	return c, peers
}

func (c *testCluster) openStore(nd *testNode, peers []Peer, tweak func(*Config)) {
	c.t.Helper()
	cfg := fastConfig()
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = nd.id, nd.dataDir, peers
	cfg.Logger = testLogger(c.t, nd.id)
	cfg.Clock = func() time.Time { return nd.clock() }
	cfg.WrapRaftLayer = func(l raft.StreamLayer) raft.StreamLayer { nd.net.StreamLayer = l; return nd.net }
	if tweak != nil {
		tweak(&cfg)
	}
	st, err := Open(cfg, nd.mux)
	if err != nil {
		c.t.Fatalf("open %s: %v", nd.id, err)
	}
	nd.store = st
}

// stop closes the node's store and peer port (an in-process crash: no
// leadership transfer). Safe to call twice.
func (nd *testNode) stop() {
	if nd.store != nil {
		nd.store.Close()
		nd.store = nil
	}
	if nd.mux != nil {
		nd.mux.Close()
		nd.mux = nil
	}
}

// restart reopens a stopped node from its data dir on the same peer address.
func (c *testCluster) restart(nd *testNode) {
	c.t.Helper()
	var mux *transport.Mux
	var err error
	waitFor(c.t, 10*time.Second, "rebind "+nd.addr, func() bool {
		mux, err = transport.Listen(transport.Config{BindAddr: nd.addr, Logger: testLogger(c.t, nd.id)})
		return err == nil
	})
	nd.mux = mux
	nd.net = &cuttableLayer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	c.openStore(nd, nil, nil)
}

func (c *testCluster) running() []*testNode {
	var out []*testNode
	for _, nd := range c.nodes {
		if nd.store != nil {
			out = append(out, nd)
		}
	}
	return out
}

// leader waits until exactly one running node leads and every running node
// that is not isolated agrees on it, and returns it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var found *testNode
	waitFor(c.t, 15*time.Second, "a ready leader", func() bool {
		found = nil
		for _, nd := range c.running() {
			if nd.store.IsLeader() && nd.store.readyTerm.Load() == nd.store.raft.CurrentTerm() {
				if found != nil {
					return false
				}
				found = nd
			}
		}
		return found != nil
	})
	return found
}

func (c *testCluster) followers(leader *testNode) []*testNode {
	var out []*testNode
	for _, nd := range c.running() {
		if nd != leader {
			out = append(out, nd)
		}
	}
	return out
}

// isolate cuts every raft link between nd and the other nodes, both ways.
func (c *testCluster) isolate(nd *testNode) {
	for _, other := range c.nodes {
		if other == nd {
			continue
		}
		nd.net.cut(other.addr)
		if other.net != nil {
			other.net.cut(nd.addr)
		}
	}
}

func (c *testCluster) heal() {
	for _, nd := range c.nodes {
		if nd.net != nil {
			nd.net.healAll()
		}
	}
}

// cuttableLayer wraps a raft stream layer: dials to a cut address fail, and
// connections this node dialed to it are closed when it is cut.
type cuttableLayer struct {
	raft.StreamLayer
	mu      sync.Mutex
	blocked map[string]bool
	conns   map[net.Conn]string
}

func (l *cuttableLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	blocked := l.blocked[string(addr)]
	l.mu.Unlock()
	if blocked {
		return nil, errors.New("test: link cut")
	}
	conn, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocked[string(addr)] {
		conn.Close()
		return nil, errors.New("test: link cut")
	}
	l.conns[conn] = string(addr)
	return &trackedConn{Conn: conn, l: l}, nil
}

func (l *cuttableLayer) cut(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocked[addr] = true
	for conn, a := range l.conns {
		if a == addr {
			conn.Close()
			delete(l.conns, conn)
		}
	}
}

func (l *cuttableLayer) healAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.blocked)
}

type trackedConn struct {
	net.Conn
	l *cuttableLayer
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c.Conn)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testLogger sends a node's logs to t.Log at warn level and above (debug with -v
// would drown the output), tagged with the node id. raft's per-connection
// goroutines are not waited for by anyone and may log while the test ends,
// so the writer goes quiet, under a lock, once the test's cleanups run.
func testLogger(t testing.TB, id string) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", id)
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}
