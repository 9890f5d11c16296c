package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// gatedLog holds raft's log writes at a gate once armed, as a disk that
// stops answering would, and fails each of them with EIO when the gate
// opens.
type gatedLog struct {
	raft.LogStore
	armed   atomic.Bool
	entered chan struct{} // closed when the first write waits at the gate
	once    sync.Once
	release chan struct{}
	opened  sync.Once
}

func newGatedLog(l raft.LogStore) *gatedLog {
	return &gatedLog{LogStore: l, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedLog) StoreLogs(logs []*raft.Log) error {
	if !g.armed.Load() {
		return g.LogStore.StoreLogs(logs)
	}
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return fmt.Errorf("test: write raft.db: %w", syscall.EIO)
}

func (g *gatedLog) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

func (g *gatedLog) IsMonotonic() bool {
	m, ok := g.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// open lets every write held at the gate go on (and fail). Safe to call twice.
func (g *gatedLog) open() { g.opened.Do(func() { close(g.release) }) }

// gatedCluster is a three-node cluster whose log stores can be gated.
func gatedCluster(t *testing.T) (*testCluster, map[string]*gatedLog) {
	gates := map[string]*gatedLog{}
	var mu sync.Mutex
	c := newTestCluster(t, 3, func(cfg *Config) {
		id := cfg.NodeID
		cfg.WrapRaftStores = func(l raft.LogStore, s raft.StableStore) (raft.LogStore, raft.StableStore) {
			g := newGatedLog(l)
			mu.Lock()
			gates[id] = g
			mu.Unlock()
			return g, s
		}
	})
	t.Cleanup(func() {
		for _, g := range gates {
			g.open()
		}
	})
	return c, gates
}

// holdLeaderLoop arms the leader's gate and starts a write, which stops
// raft's leader loop in its log write; it returns the write's result.
func holdLeaderLoop(t *testing.T, leader *testNode, g *gatedLog) <-chan error {
	t.Helper()
	g.armed.Store(true)
	setErr := make(chan error, 1)
	go func() {
		_, err := leader.store.Set(ctxTimeout(t, 30*time.Second), "held", []byte("1"), 0)
		setErr <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader's log write never reached the gate")
	}
	return setErr
}

// closeWithin closes nd's store and fails the test if Close takes longer
// than limit; a Close that hangs is left behind (the test fails anyway).
func closeWithin(t *testing.T, nd *testNode, limit time.Duration) error {
	t.Helper()
	st := nd.store
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		t.Logf("%s: Close returned in %s: %v", nd.id, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(limit):
		nd.store = nil // the cleanup must not wait on the same Close
		t.Fatalf("%s: Close did not return within %s after the disk failed", nd.id, limit)
		return nil
	}
}

// A linearizable read queues raft's leadership check while the leader loop
// is held in a log write; the disk then fails and raft shuts down before
// the loop reads the check. raft never answers that check: the read must
// still fail at once with the disk error, and Close must return without
// waiting for it.
func TestCloseAfterDiskFailureWithLeadershipCheckQueued(t *testing.T) {
	old := diskCloseGrace
	diskCloseGrace = time.Minute // the fix, not the bound, must end Close
	t.Cleanup(func() { diskCloseGrace = old })

	c, gates := gatedCluster(t)
	leader := c.leader()
	mustSet(t, leader, "k0", "1", 0)
	waitFor(t, 10*time.Second, "the leader to serve linearizable reads", func() bool {
		_, err := leader.store.Get(ctxTimeout(t, time.Second), "k0", Linearizable)
		return err == nil
	})
	g := gates[leader.id]
	setErr := holdLeaderLoop(t, leader, g)

	getErr := make(chan error, 1)
	go func() {
		_, err := leader.store.Get(ctxTimeout(t, 30*time.Second), "k0", Linearizable)
		getErr <- err
	}()
	verifyCh := reflect.ValueOf(leader.store.raft).Elem().FieldByName("verifyCh")
	if !verifyCh.IsValid() || verifyCh.Kind() != reflect.Chan {
		t.Fatal("raft.Raft has no verifyCh channel: the test needs updating for this raft version")
	}
	waitFor(t, 10*time.Second, "the read's leadership check to be queued", func() bool { return verifyCh.Len() > 0 })

	// Another of raft's storage calls fails: the guard records it and
	// watchDisk shuts raft down while the leader loop is still held.
	leader.store.disk.check("read log entry 1", fmt.Errorf("test: read raft.db: %w", syscall.EIO))
	waitFor(t, 10*time.Second, "raft to shut down", func() bool { return leader.store.raft.State() == raft.Shutdown })
	g.open()

	select {
	case err := <-getErr:
		if !errors.Is(err, ErrDiskFailed) {
			t.Errorf("linearizable Get = %v, want ErrDiskFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the linearizable read did not return within 10s of the disk failure")
	}
	if err := <-setErr; err == nil {
		t.Error("the held write was acknowledged after the disk failed")
	}
	if verifyCh.Len() == 0 {
		t.Log("raft answered the leadership check after all: this run did not strand it")
	}
	closeWithin(t, leader, 10*time.Second)
}

// A raft goroutine that never comes back from the dead disk: Close must
// still return, after diskCloseGrace, saying what it gave up on.
func TestCloseAfterDiskFailureIsBounded(t *testing.T) {
	old := diskCloseGrace
	diskCloseGrace = 500 * time.Millisecond
	t.Cleanup(func() { diskCloseGrace = old })

	c, gates := gatedCluster(t)
	leader := c.leader()
	mustSet(t, leader, "k0", "1", 0)
	g := gates[leader.id]
	setErr := holdLeaderLoop(t, leader, g)
	leader.store.disk.check("read log entry 1", fmt.Errorf("test: read raft.db: %w", syscall.EIO))

	err := closeWithin(t, leader, 10*time.Second)
	if !errors.Is(err, ErrDiskFailed) || !strings.Contains(err.Error(), "raft's shutdown") {
		t.Errorf("Close = %v, want ErrDiskFailed naming raft's shutdown as what it abandoned", err)
	}
	g.open() // the dead disk answers at last: let the abandoned close finish
	if err := <-setErr; err == nil {
		t.Error("the held write was acknowledged after the disk failed")
	}
}
