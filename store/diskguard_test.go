package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// faultyStores wraps a node's log and stable store as opened from disk and
// fails the calls a test switches on with EIO, as a dying disk or a failed
// fsync would.
type faultyStores struct {
	raft.LogStore
	stable raft.StableStore

	failLogWrites    atomic.Bool // StoreLogs, DeleteRange
	failStableWrites atomic.Bool // Set, SetUint64
	failLogReads     atomic.Bool // GetLog
	// corruptReads flips a bit in the data of every entry GetLog reads
	// from disk, as a bad sector or a stray write would.
	corruptReads atomic.Bool
	// failed counts the calls that returned the injected error.
	failed atomic.Int64
}

func (f *faultyStores) fail(on *atomic.Bool, op string) error {
	if !on.Load() {
		return nil
	}
	f.failed.Add(1)
	return fmt.Errorf("test: %s: %w", op, syscall.EIO)
}

func (f *faultyStores) StoreLogs(logs []*raft.Log) error {
	if err := f.fail(&f.failLogWrites, "fsync raft.db"); err != nil {
		return err
	}
	return f.LogStore.StoreLogs(logs)
}

func (f *faultyStores) IsMonotonic() bool {
	m, ok := f.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (f *faultyStores) StoreLog(l *raft.Log) error { return f.StoreLogs([]*raft.Log{l}) }

func (f *faultyStores) DeleteRange(min, max uint64) error {
	if err := f.fail(&f.failLogWrites, "write raft.db"); err != nil {
		return err
	}
	return f.LogStore.DeleteRange(min, max)
}

func (f *faultyStores) GetLog(index uint64, l *raft.Log) error {
	if err := f.fail(&f.failLogReads, "read raft.db"); err != nil {
		return err
	}
	if err := f.LogStore.GetLog(index, l); err != nil {
		return err
	}
	if f.corruptReads.Load() && len(l.Data) > 0 {
		l.Data = append([]byte(nil), l.Data...)
		l.Data[len(l.Data)/2] ^= 0x10
	}
	return nil
}

func (f *faultyStores) Set(k, v []byte) error {
	if err := f.fail(&f.failStableWrites, "fsync stable store"); err != nil {
		return err
	}
	return f.stable.Set(k, v)
}

func (f *faultyStores) SetUint64(k []byte, v uint64) error {
	if err := f.fail(&f.failStableWrites, "fsync stable store"); err != nil {
		return err
	}
	return f.stable.SetUint64(k, v)
}

func (f *faultyStores) Get(k []byte) ([]byte, error)       { return f.stable.Get(k) }
func (f *faultyStores) GetUint64(k []byte) (uint64, error) { return f.stable.GetUint64(k) }

// faultyCluster is a three-node cluster whose nodes' stores can be made to
// fail, each node with its own metrics registry.
func faultyCluster(t *testing.T) (*testCluster, map[string]*faultyStores, map[string]*prometheus.Registry) {
	return faultyCluster2(t, nil)
}

// faultyCluster2 is faultyCluster with tweak applied to every node's Config.
func faultyCluster2(t *testing.T, tweak func(*Config)) (*testCluster, map[string]*faultyStores, map[string]*prometheus.Registry) {
	faults := map[string]*faultyStores{}
	regs := map[string]*prometheus.Registry{}
	var mu sync.Mutex
	c := newTestCluster(t, 3, func(cfg *Config) {
		reg := prometheus.NewRegistry()
		cfg.Metrics = reg
		id := cfg.NodeID
		cfg.WrapRaftStores = func(l raft.LogStore, s raft.StableStore) (raft.LogStore, raft.StableStore) {
			f := &faultyStores{LogStore: l, stable: s}
			mu.Lock()
			faults[id] = f
			mu.Unlock()
			return f, f
		}
		mu.Lock()
		regs[id] = reg
		mu.Unlock()
		if tweak != nil {
			tweak(cfg)
		}
	})
	return c, faults, regs
}

// ackedWriter writes distinct keys through the given nodes until stopped and
// remembers every write that was acknowledged.
type ackedWriter struct {
	mu    sync.Mutex
	acked map[string]string
	stop  chan struct{}
	done  sync.WaitGroup
}

func startAckedWriter(t *testing.T, nodes ...*testNode) *ackedWriter {
	w := &ackedWriter{acked: map[string]string{}, stop: make(chan struct{})}
	for i, nd := range nodes {
		st := nd.store
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				key, val := fmt.Sprintf("w%d-%d", i, n), fmt.Sprintf("%d", n)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := st.Set(ctx, key, []byte(val), 0)
				cancel()
				if err == nil {
					w.mu.Lock()
					w.acked[key] = val
					w.mu.Unlock()
				} else if errors.Is(err, ErrDiskFailed) {
					time.Sleep(5 * time.Millisecond) // the node refuses at once; do not spin
				}
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *ackedWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.done.Wait()
}

func (w *ackedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// checkFailStopped checks that nd stopped on a disk failure of op and
// refuses everything with ErrDiskFailed, and that its metric says so.
func checkFailStopped(t *testing.T, nd *testNode, reg *prometheus.Registry, op string) {
	t.Helper()
	waitFor(t, 10*time.Second, nd.id+" to stop raft after its disk failed", func() bool {
		return nd.store.DiskFailure() != nil && nd.store.raftStoppedByDisk()
	})
	if f := nd.store.DiskFailure(); f.Op != op || f.Err == "" {
		t.Errorf("DiskFailure = %+v, want op %q", f, op)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	err := nd.store.Ready(ctx)
	if !errors.Is(err, ErrDiskFailed) || ReadyReason(err) != "disk" {
		t.Errorf("Ready = %v (reason %q), want ErrDiskFailed (disk)", err, ReadyReason(err))
	}
	if _, err := nd.store.Get(ctx, "k0", Linearizable); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("linearizable Get = %v, want ErrDiskFailed", err)
	}
	if _, err := nd.store.Get(ctx, "k0", Stale); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("stale Get = %v, want ErrDiskFailed", err)
	}
	if _, err := nd.store.Set(ctx, "after", []byte("1"), 0); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Set = %v, want ErrDiskFailed", err)
	}
	if _, err := nd.store.Watch(ctx, WatchRequest{Prefix: "k"}); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Watch = %v, want ErrDiskFailed", err)
	}
	st, err := nd.store.Status(ctx)
	if err != nil || st.DiskFailure == nil || st.State != "Shutdown" {
		t.Errorf("Status = %+v, %v; want the disk failure and state Shutdown", st, err)
	}
	if v, found := sample(t, reg, "quorumkv_disk_failed"); !found || v != 1 {
		t.Errorf("quorumkv_disk_failed = %v (found %v), want 1", v, found)
	}
}

// checkSurvivors checks that the other two nodes elect a leader among
// themselves, take new writes, and hold every acknowledged write.
func checkSurvivors(t *testing.T, c *testCluster, failed *testNode, w *ackedWriter) {
	t.Helper()
	var alive []*testNode
	for _, nd := range c.nodes {
		if nd != failed {
			alive = append(alive, nd)
		}
	}
	before := w.count()
	waitFor(t, 15*time.Second, "writes acknowledged after the failure", func() bool { return w.count() > before+20 })
	w.halt()
	mustSet(t, alive[0], "final", "1", 0)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, nd := range alive {
		if nd.store.raft.State() == raft.Shutdown {
			t.Fatalf("%s stopped too", nd.id)
		}
		for k, v := range w.acked {
			it, err := nd.store.Get(ctxTimeout(t, 10*time.Second), k, Linearizable)
			if err != nil || string(it.Value) != v {
				t.Fatalf("acknowledged %s=%s: %s reads %q, %v", k, v, nd.id, it.Value, err)
			}
		}
	}
	t.Logf("%d acknowledged writes, every one readable on %s and %s", len(w.acked), alive[0].id, alive[1].id)
	// The store's own record that raft stopped, not raft.State: after a
	// failed write raft's leader loop can set Follower over Shutdown.
	if failed.store.IsLeader() || !failed.store.raftStoppedByDisk() {
		t.Errorf("%s came back: leader %v, raft stopped after the disk failure %v (raft reports %s)",
			failed.id, failed.store.IsLeader(), failed.store.raftStoppedByDisk(), failed.store.raft.State())
	}
}

func TestDiskFailureOnLeaderFailStops(t *testing.T) {
	c, faults, regs := faultyCluster(t)
	leader := c.leader()
	for i := range 10 {
		mustSet(t, leader, fmt.Sprintf("k%d", i), "1", 0)
	}
	if v, found := sample(t, regs[leader.id], "quorumkv_disk_failed"); !found || v != 0 {
		t.Fatalf("quorumkv_disk_failed = %v (found %v) before any failure, want 0", v, found)
	}
	w := startAckedWriter(t, c.nodes...)
	waitFor(t, 10*time.Second, "writes before the failure", func() bool { return w.count() > 20 })
	faults[leader.id].failLogWrites.Store(true)
	checkFailStopped(t, leader, regs[leader.id], "store log entries")
	checkSurvivors(t, c, leader, w)
}

func TestDiskFailureOnFollowerFailStops(t *testing.T) {
	c, faults, regs := faultyCluster(t)
	leader := c.leader()
	f := c.followers(leader)[0]
	w := startAckedWriter(t, c.nodes...)
	waitFor(t, 10*time.Second, "writes before the failure", func() bool { return w.count() > 20 })
	faults[f.id].failLogWrites.Store(true)
	checkFailStopped(t, f, regs[f.id], "store log entries")
	if !leader.store.IsLeader() {
		t.Errorf("a follower's disk failure moved leadership away from %s", leader.id)
	}
	checkSurvivors(t, c, f, w)
}

// A failed write of raft's current term makes raft panic; the guard must
// fail-stop the node instead, with the process and its HTTP still up.
func TestDiskFailureOfStableStoreDoesNotPanic(t *testing.T) {
	c, faults, regs := faultyCluster(t)
	leader := c.leader()
	fs := c.followers(leader)
	bad, other := fs[0], fs[1]
	mustSet(t, leader, "k0", "1", 0)
	w := startAckedWriter(t, leader, other)
	faults[bad.id].failStableWrites.Store(true)
	// A new term reaches the bad node in the new leader's first
	// AppendEntries (or heartbeat): raft saves it before anything else.
	if err := leader.store.raft.LeadershipTransferToServer(raft.ServerID(other.id), raft.ServerAddress(other.addr)).Error(); err != nil {
		t.Fatalf("transfer leadership to %s: %v", other.id, err)
	}
	checkFailStopped(t, bad, regs[bad.id], "set CurrentTerm")
	checkSurvivors(t, c, bad, w)
}

// The guard must not hide that raft-wal is monotonic: raft asks the store it
// was given, and without the answer it leaves a gap in a wal log after a
// snapshot install, which raft-wal refuses.
func TestDiskGuardKeepsMonotonic(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  raft.LogStore
		want bool
	}{
		{"monotonic", &raft.MockMonotonicLogStore{}, true},
		{"plain", raft.NewInmemStore(), false},
	} {
		g := newDiskGuard(tc.log, raft.NewInmemStore())
		var ls raft.LogStore = g
		m, ok := ls.(raft.MonotonicLogStore)
		if !ok || m.IsMonotonic() != tc.want {
			t.Errorf("%s: guard IsMonotonic = %v (implements %v), want %v", tc.name, ok && m.IsMonotonic(), ok, tc.want)
		}
	}
}

// A corrupt entry found while the node runs (here: read to catch up a
// follower that fell behind the log cache) stops the node like an I/O
// error, and never reaches a client or another node.
func TestCorruptEntryAtRunTimeFailStops(t *testing.T) {
	c, faults, regs := faultyCluster(t)
	leader := c.leader()
	lag := c.followers(leader)[0]
	c.isolate(lag)
	w := startAckedWriter(t, leader, leader, leader, leader, leader, leader, leader, leader)
	// Past the 1024 entries raft's log cache holds, so catching lag up
	// reads entries from disk.
	waitFor(t, 60*time.Second, "1100 entries while a follower is cut off", func() bool {
		return leader.store.raft.LastIndex() > lag.store.AppliedIndex()+1100
	})
	w.halt()
	faults[leader.id].corruptReads.Store(true)
	c.heal()
	waitFor(t, 15*time.Second, leader.id+" to find the corrupt entry", func() bool { return leader.store.DiskFailure() != nil })
	checkFailStopped(t, leader, regs[leader.id], leader.store.DiskFailure().Op)
	if f := leader.store.DiskFailure(); !strings.Contains(f.Err, "fails its CRC-32C") {
		t.Fatalf("disk failure %+v, want a checksum mismatch", f)
	}
	// The other two elect a leader; the lagging node catches up from it with
	// intact entries: every acknowledged write reads back on it.
	var alive *testNode
	for _, nd := range c.nodes {
		if nd != leader && nd != lag {
			alive = nd
		}
	}
	mustSet(t, alive, "after", "1", 0)
	waitFor(t, 30*time.Second, lag.id+" to catch up", func() bool { return lag.store.AppliedIndex() >= alive.store.AppliedIndex() })
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.acked {
		it, err := lag.store.Get(ctxTimeout(t, 5*time.Second), k, Stale)
		if err != nil || string(it.Value) != v {
			t.Fatalf("acknowledged %s=%s: %s holds %q, %v", k, v, lag.id, it.Value, err)
		}
	}
}

// A snapshot that fails its CRC when the leader opens it to send to a
// follower stops the leader; raft alone would retry forever.
func TestCorruptSnapshotAtRunTimeFailStops(t *testing.T) {
	// On bolt: with wal the restarted follower caught up without the leader
	// opening its snapshot in this setup, for a reason not yet understood;
	// the guard does not depend on the log store.
	c, _, regs := faultyCluster2(t, func(cfg *Config) { cfg.SnapshotThreshold = 32; cfg.TrailingLogs = 8; cfg.RaftLog = RaftLogBolt })
	leader := c.leader()
	// Stopped, not cut off: a node cut off campaigns, and its higher term
	// would force an election that the intact third node may win. Briefly:
	// raft backs off from a peer that keeps failing, up to 40 s.
	lag := c.followers(leader)[0]
	lag.stop()
	for i := range 48 {
		mustSet(t, leader, fmt.Sprintf("k%d", i), fmt.Sprintf("%d", i), 0)
	}
	if err := leader.store.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	path := filepath.Join(newestSnapshot(t, leader.dataDir), "state.bin")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	if _, err := f.ReadAt(one[:], 40); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x20
	if _, err := f.WriteAt(one[:], 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.restart(lag)
	waitFor(t, 20*time.Second, leader.id+" to find the damaged snapshot", func() bool { return leader.store.DiskFailure() != nil })
	checkFailStopped(t, leader, regs[leader.id], leader.store.DiskFailure().Op)
	if f := leader.store.DiskFailure(); !strings.HasPrefix(f.Op, "open snapshot") {
		t.Fatalf("disk failure %+v, want the snapshot open", f)
	}
}
