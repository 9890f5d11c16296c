package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// Raft setup: openRaft wires the log, stable and snapshot stores, the
// transport and the state machine as raft sees it (instrumentedFSM, whose
// snapshots write through syncingSink).

// openRaft opens this node's raft instance and bootstraps or rejoins.
func (s *Store) openRaft() error {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: create data dir: %w", err)
	}
	hlog := newRaftLogger(s.cfg.Logger)

	kind, err := chooseRaftLog(s.cfg.DataDir, s.cfg.RaftLog)
	if err != nil {
		return err
	}
	ls, err := openLogStore(kind, dir, hlog)
	if err != nil {
		return err
	}
	if s.cfg.WrapRaftStores != nil {
		ls.log, ls.stable = s.cfg.WrapRaftStores(ls.log, ls.stable)
	}
	// Checksums on every entry and stable value (logsum.go), all verified
	// before raft starts, with the newest snapshot (verify.go).
	sumLog, sumStable, err := withChecksums(dir, ls)
	if err == nil {
		err = verifyLog(sumLog, filepath.Join(dir, logFileName(ls.name)))
	}
	if err == nil {
		err = verifyStable(sumStable)
	}
	if err == nil {
		err = verifySnapshots(filepath.Join(dir, "snapshots"))
	}
	if err != nil {
		ls.closer.Close()
		return err
	}
	cache, err := raft.NewLogCache(1024, sumLog)
	if err != nil {
		ls.closer.Close()
		return fmt.Errorf("store: log cache: %w", err)
	}
	// raft -> diskGuard -> LogCache -> log store: the guard sees every call
	// raft makes, including reads the cache answers (diskguard.go).
	guard := newDiskGuard(cache, sumStable)
	logs := guard
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog.Named("snapshot"))
	if err != nil {
		ls.closer.Close()
		return fmt.Errorf("store: open snapshot store: %w", err)
	}
	snaps := durableSnapshots{FileSnapshotStore: fileSnaps, dir: filepath.Join(dir, "snapshots")}
	// The stores created their files and directories without syncing the
	// directories that name them (durable.go).
	syncDirList := []string{snaps.dir, dir, s.cfg.DataDir}
	if kind == RaftLogWAL {
		syncDirList = append([]string{filepath.Join(dir, walDir)}, syncDirList...)
	}
	if err := syncDirs(syncDirList...); err != nil {
		ls.closer.Close()
		return err
	}
	syncParent(s.cfg.DataDir)
	// MaxRPCsInFlight 1 disables raft's pipelined replication, which can stall a
	// follower while heartbeats keep it from noticing (hashicorp/raft#612).
	// Group commit still batches up to MaxAppendEntries entries per round trip.
	layer := s.mux.RaftLayer()
	if s.cfg.WrapRaftLayer != nil {
		layer = s.cfg.WrapRaftLayer(layer)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          layer,
		MaxPool:         3,
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hlog.Named("transport"),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = s.cfg.CommitTimeout
	rc.MaxAppendEntries = s.cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.ShutdownOnRemove = false
	rc.NotifyCh = s.notifyCh
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true

	existing, err := raft.HasExistingState(logs, guard, snaps)
	if err != nil {
		ls.closer.Close()
		return fmt.Errorf("store: inspect raft state: %w", err)
	}
	stable := &shutdownSafeStable{StableStore: guard}
	r, err := raft.NewRaft(rc, instrumentedFSM{FSM: s.fsm, m: s.metrics, snapDir: filepath.Join(dir, "snapshots")}, logs, stable, snapshotGuard{snaps, guard},
		observedTransport{NetworkTransport: trans, view: s.repl})
	if err != nil {
		trans.Close()
		ls.closer.Close()
		return fmt.Errorf("store: start raft: %w", err)
	}
	if !existing && s.cfg.Join {
		s.joining = true
		s.log.Info("no raft state and join requested: not bootstrapping; waiting to be added by the cluster")
	} else if !existing {
		servers := []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}
		if len(s.cfg.Bootstrap) > 0 {
			servers = servers[:0]
			for _, p := range s.cfg.Bootstrap {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			}
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Shutdown()
			trans.Close()
			ls.closer.Close()
			return fmt.Errorf("store: bootstrap cluster: %w", err)
		}
		s.log.Info("bootstrapped new cluster", "voters", len(servers))
	} else {
		s.log.Info("found existing raft state; rejoining", "dir", dir)
		if s.cfg.Join {
			s.log.Info("ignoring join: this node already has raft state and is a member (or was removed; wipe its data dir to join anew)")
		}
	}
	s.raft, s.logStore, s.stable, s.netTrans, s.disk = r, ls, stable, trans, guard
	s.log.Info("raft log store", "store", ls.name)
	s.observer = raft.NewObserver(s.observerCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(s.observer)
	return nil
}

// instrumentedFSM is the state machine as raft sees it: the FSM, with batch
// sizes and snapshot persistence measured on the way through. It adds no
// state and changes nothing the FSM computes.
type instrumentedFSM struct {
	*fsm.FSM
	m *metrics
	// snapDir is the FileSnapshotStore's directory, for syncingSink.
	snapDir string
}

var _ raft.BatchingFSM = instrumentedFSM{}

func (f instrumentedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.m.applyBatch.Observe(float64(len(logs)))
	return f.FSM.ApplyBatch(logs)
}

func (f instrumentedFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return timedSnapshot{FSMSnapshot: snap, m: f.m, snapDir: f.snapDir}, nil
}

// timedSnapshot times Persist, which raft runs on its snapshot goroutine,
// and spreads the snapshot's disk writes (syncingSink).
type timedSnapshot struct {
	raft.FSMSnapshot
	m       *metrics
	snapDir string
}

func (s timedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	err := s.FSMSnapshot.Persist(newSyncingSink(sink, s.snapDir))
	s.m.snapshotDuration.Observe(time.Since(start).Seconds())
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.m.snapshots.WithLabelValues(result).Inc()
	return err
}

// snapshotSyncEvery is how many bytes a snapshot may write to the page cache
// before they are forced to disk.
//
// Why: raft's FileSnapshotSink writes through the page cache and
// fsyncs once, on Close. At one million keys that is ~230 MB of dirty pages
// flushed in one burst (~0.7 s on the development disk), and the raft log's
// own fsyncs queue behind it on the same file system: write p99 on a leader
// rose ~5x while a snapshot ran. Syncing every few MiB as the snapshot is
// written spreads that I/O into short flushes that log commits slip between.
const snapshotSyncEvery = 8 << 20

// syncingSink forces a file snapshot's data to disk every snapshotSyncEvery
// bytes. It finds the file the way raft.FileSnapshotStore lays it out
// (<dir>/<id>.tmp/state.bin) and fsyncs its own descriptor of it, which
// flushes the same inode. If that file is not there (another SnapshotStore),
// it does nothing beyond passing writes through; durability never depends on
// it, since the sink still fsyncs everything on Close.
type syncingSink struct {
	raft.SnapshotSink
	path  string
	f     *os.File
	off   bool // no file to sync: pass writes through
	dirty int64
}

func newSyncingSink(sink raft.SnapshotSink, snapDir string) *syncingSink {
	return &syncingSink{SnapshotSink: sink, path: filepath.Join(snapDir, sink.ID()+".tmp", "state.bin")}
}

func (s *syncingSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.dirty += int64(n)
	if err == nil && !s.off && s.dirty >= snapshotSyncEvery {
		s.dirty = 0
		if s.f == nil {
			f, oerr := os.Open(s.path)
			if oerr != nil {
				s.off = true
				return n, nil
			}
			s.f = f
		}
		if serr := s.f.Sync(); serr != nil {
			// The sink's own fsync on Close reports real failures.
			s.off = true
		}
	}
	return n, err
}

func (s *syncingSink) closeFile() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

func (s *syncingSink) Close() error {
	s.closeFile()
	return s.SnapshotSink.Close()
}

func (s *syncingSink) Cancel() error {
	s.closeFile()
	return s.SnapshotSink.Cancel()
}
