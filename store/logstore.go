package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// The raft log stores a node can run (Config.RaftLog, kvnode --raft-log).
const (
	// RaftLogBolt keeps the log and raft's stable state (term, vote) in one
	// bbolt file, <data-dir>/raft/raft.db (raft-boltdb). A bbolt commit
	// syncs twice (data pages, then the meta page), so each append costs two
	// fsyncs.
	RaftLogBolt = "bolt"
	// RaftLogWAL keeps the log in append-only segment files under
	// <data-dir>/raft/wal (raft-wal), one fsync per append. raft-wal also
	// serves as the stable store: term and vote go to its small bbolt meta
	// file in the same directory, written only on elections, so the log and
	// the state raft needs with it stay in one place.
	RaftLogWAL = "wal"
	// DefaultRaftLog is the log store of a new data dir when none is chosen:
	// wal, for its one fsync per append (docs/raft-log.md, "Which default,
	// and why"). An existing data dir keeps the store it has.
	DefaultRaftLog = RaftLogWAL
)

// Paths of each log store inside <data-dir>/raft; their presence tells which
// store a data dir was created with.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// validRaftLog reports whether name is a log store Config.RaftLog accepts
// ("" chooses the data dir's store, or DefaultRaftLog for a new one).
func validRaftLog(name string) bool {
	return name == "" || name == RaftLogBolt || name == RaftLogWAL
}

// ErrRaftLogMismatch is returned by Open when Config.RaftLog names a log
// store other than the one the data dir holds.
var ErrRaftLogMismatch = errors.New("store: raft log store does not match the data dir")

// DetectRaftLog reports which log store the raft directory of dataDir holds:
// RaftLogBolt, RaftLogWAL, or "" when it holds neither (a new data dir, or
// one seeded from a backup, which has only a snapshot).
func DetectRaftLog(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "raft")
	bolt, err := exists(filepath.Join(dir, boltFile))
	if err != nil {
		return "", err
	}
	wal, err := exists(filepath.Join(dir, walDir))
	if err != nil {
		return "", err
	}
	switch {
	case bolt && wal:
		return "", fmt.Errorf("store: %s holds both a bolt raft log (%s) and a wal raft log (%s/): one was copied in by hand; keep the one this node ran with and move the other aside",
			dir, boltFile, walDir)
	case bolt:
		return RaftLogBolt, nil
	case wal:
		return RaftLogWAL, nil
	}
	return "", nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("store: inspect raft log: %w", err)
}

// chooseRaftLog picks the log store to open: the one the data dir already
// has, the requested one for a new data dir, or an ErrRaftLogMismatch that
// says how to resolve a conflict between the two.
func chooseRaftLog(dataDir, requested string) (string, error) {
	found, err := DetectRaftLog(dataDir)
	if err != nil {
		return "", err
	}
	switch {
	case found == "" && requested == "":
		return DefaultRaftLog, nil
	case found == "":
		return requested, nil
	case requested == "" || requested == found:
		return found, nil
	}
	return "", fmt.Errorf("%w: --raft-log=%s, but %s holds a %s raft log. A node keeps the log store its data dir was created with: "+
		"start it with --raft-log=%s (or leave the flag unset), or, to move this node to %s, replace it: remove it from the cluster, "+
		"wipe its data dir and start it with --raft-log=%s --join (docs/raft-log.md)",
		ErrRaftLogMismatch, requested, dataDir, found, found, requested, requested)
}

// logStore is an open raft log store with the stable store that goes with it.
type logStore struct {
	name   string
	log    raft.LogStore
	stable raft.StableStore
	closer io.Closer
}

// openLogStore opens (creating if needed) the named log store in raftDir.
func openLogStore(name, raftDir string, hlog hclog.Logger) (logStore, error) {
	switch name {
	case RaftLogBolt:
		if err := verifyBolt(filepath.Join(raftDir, boltFile)); err != nil {
			return logStore{}, err
		}
		// The freelist as a hash map, not written on commit (as etcd runs
		// bbolt): the default array freelist is merged into a new slice and
		// a freelist page is written out on every commit; with a large live
		// heap each byte allocated brings the next collection closer
		// (store/DESIGN.md, "Durability and restart"). Without a stored
		// freelist, opening the log scans its pages, which is quick:
		// snapshots keep the log short.
		bolt, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(raftDir, boltFile),
			BoltOptions: &bbolt.Options{FreelistType: bbolt.FreelistMapType, NoFreelistSync: true},
			NoSync:      noSync,
		})
		if err != nil {
			return logStore{}, fmt.Errorf("store: open bolt raft log %s: %w", raftDir, err)
		}
		return logStore{name: name, log: bolt, stable: bolt, closer: bolt}, nil
	case RaftLogWAL:
		dir := filepath.Join(raftDir, walDir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return logStore{}, fmt.Errorf("store: create wal dir: %w", err)
		}
		// raft-wal recovers on open: it reads the open tail segment up to
		// its last commit frame whose running checksum verifies, and ignores
		// a batch that was written after it but never committed.
		if err := verifyBolt(filepath.Join(dir, metadb.FileName)); err != nil {
			return logStore{}, err
		}
		// The meta store is supplied here so that a failed open can release
		// it (and its file lock); once the WAL is open, WAL.Close closes it.
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(dir, raftwal.WithLogger(hlog.Named("wal")), raftwal.WithMetaStore(meta))
		if err != nil {
			meta.Close()
			return logStore{}, fmt.Errorf("store: open wal raft log %s: %w", dir, err)
		}
		return logStore{name: name, log: w, stable: w, closer: w}, nil
	}
	return logStore{}, fmt.Errorf("store: unknown raft log store %q (want %s or %s)", name, RaftLogBolt, RaftLogWAL)
}

// logStoreCollector exports which raft log store this node runs, as an info
// metric (quorumkv_raft_log_store{store="wal"} 1), so dashboards can compare
// nodes on different stores during a migration.
type logStoreCollector struct {
	s    *Store
	desc *prometheus.Desc
}

func newLogStoreCollector(s *Store) *logStoreCollector {
	return &logStoreCollector{s: s, desc: prometheus.NewDesc("quorumkv_raft_log_store",
		"The raft log store this node runs (--raft-log): 1 for the store named by the label, bolt or wal.", []string{"store"}, nil)}
}

func (c *logStoreCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *logStoreCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, c.s.logStore.name)
}
