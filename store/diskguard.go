package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Disk fail-stop. Every call raft makes to its log store and stable store
// passes through a diskGuard. The first one that fails with an error other
// than "not there" (an EIO on write or fsync, a failed read, a checksum
// mismatch: logsum.go) marks the node's disk failed, for good: the guard
// fails every later write itself, without touching the disk, and the store
// shuts raft down (failStop), so the node neither votes, nor leads, nor
// acknowledges anything again. HTTP stays up and answers 503 disk_error.
// store/DESIGN.md, "Disk errors: fail-stop", says why nothing is retried.

// DiskFailure describes the storage error that stopped this node.
type DiskFailure struct {
	// Op is the store call that failed: "store logs", "delete logs",
	// "read log", "set term", ...
	Op string
	// Err is the error it returned, as text.
	Err string
	// At is when it happened.
	At time.Time
}

func (f *DiskFailure) Error() string {
	return fmt.Sprintf("%s failed at %s: %s", f.Op, f.At.UTC().Format(time.RFC3339), f.Err)
}

// diskAdvice is what an operator does about a failed disk; it closes the log
// line, the 503 messages and the startup refusals.
const diskAdvice = "check the disk (kernel log, SMART, free space), then restart the node; " +
	"if it then refuses to start because its files are damaged, wipe its data dir and rejoin it (docs/disk-faults.md)"

// diskGuard wraps the raft log store and stable store of one node.
type diskGuard struct {
	log    raft.LogStore
	stable raft.StableStore

	mu     sync.Mutex
	failed *DiskFailure
	// failedCh is closed when failed is set.
	failedCh chan struct{}
	// stoppedCh is closed once raft has shut down after the failure. It, not
	// raft.State, says raft stopped: raft's leader loop sets Follower after
	// a failed write, and that can overwrite the Shutdown state a concurrent
	// Shutdown has just set.
	stoppedCh chan struct{}
}

func newDiskGuard(log raft.LogStore, stable raft.StableStore) *diskGuard {
	return &diskGuard{log: log, stable: stable, failedCh: make(chan struct{}), stoppedCh: make(chan struct{})}
}

// failure returns the failure that stopped the node, or nil.
func (g *diskGuard) failure() *DiskFailure {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed
}

// check records err as the node's disk failure if it is the first one, and
// returns err.
func (g *diskGuard) check(op string, err error) error {
	if err == nil || notFound(err) {
		return err
	}
	g.mu.Lock()
	if g.failed == nil {
		g.failed = &DiskFailure{Op: op, Err: err.Error(), At: time.Now()}
		close(g.failedCh)
	}
	g.mu.Unlock()
	return err
}

// notFound reports an answer that says "no such entry or key", which raft
// expects and handles (a compacted entry, a key never set), not a fault.
// raft itself recognises a missing stable key by the text "not found".
func notFound(err error) bool {
	return errors.Is(err, raft.ErrLogNotFound) || err.Error() == "not found"
}

// refused is the error of a write attempted after the failure.
func (g *diskGuard) refused(f *DiskFailure) error {
	return fmt.Errorf("%w: refusing to write after an earlier failure (%s)", ErrDiskFailed, f)
}

// IsMonotonic passes on what the store beneath says: raft-wal cannot hold a
// gap, and raft, which asks the store it was given, then clears the whole
// log after installing a snapshot (raft.MonotonicLogStore).
func (g *diskGuard) IsMonotonic() bool {
	m, ok := g.log.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (g *diskGuard) FirstIndex() (uint64, error) {
	i, err := g.log.FirstIndex()
	return i, g.check("read first log index", err)
}

func (g *diskGuard) LastIndex() (uint64, error) {
	i, err := g.log.LastIndex()
	return i, g.check("read last log index", err)
}

func (g *diskGuard) GetLog(index uint64, l *raft.Log) error {
	return g.check(fmt.Sprintf("read log entry %d", index), g.log.GetLog(index, l))
}

func (g *diskGuard) StoreLog(l *raft.Log) error {
	return g.StoreLogs([]*raft.Log{l})
}

func (g *diskGuard) StoreLogs(logs []*raft.Log) error {
	if f := g.failure(); f != nil {
		return g.refused(f)
	}
	return g.check("store log entries", g.log.StoreLogs(logs))
}

func (g *diskGuard) DeleteRange(min, max uint64) error {
	if f := g.failure(); f != nil {
		return g.refused(f)
	}
	return g.check(fmt.Sprintf("delete log entries %d..%d", min, max), g.log.DeleteRange(min, max))
}

func (g *diskGuard) Set(key, val []byte) error {
	if f := g.failure(); f != nil {
		return g.refused(f)
	}
	return g.check("set "+string(key), g.stable.Set(key, val))
}

func (g *diskGuard) Get(key []byte) ([]byte, error) {
	v, err := g.stable.Get(key)
	return v, g.check("read "+string(key), err)
}

// SetUint64 is raft's write of its current term and of the term of its last
// vote. raft panics when the current term cannot be saved, which would take
// the HTTP server down with the process; so a failed write of it is
// recorded and then reported as done. That is safe only because of what
// follows: raft is shut down, and until then every other write (log
// entries, the vote's candidate) fails here, so this node neither grants a
// vote nor stores an entry in the term it could not save. To the rest of
// the cluster it is as if the message that carried the term had been lost.
func (g *diskGuard) SetUint64(key []byte, val uint64) error {
	if f := g.failure(); f != nil {
		if string(key) == keyCurrentTerm {
			return nil
		}
		return g.refused(f)
	}
	err := g.check("set "+string(key), g.stable.SetUint64(key, val))
	if err != nil && string(key) == keyCurrentTerm {
		return nil
	}
	return err
}

func (g *diskGuard) GetUint64(key []byte) (uint64, error) {
	v, err := g.stable.GetUint64(key)
	return v, g.check("read "+string(key), err)
}

// snapshotGuard reports a snapshot raft cannot open at run time (to send it
// to a follower that fell behind the log) to the disk guard: raft's
// FileSnapshotStore checks the snapshot's CRC-64 when it opens it, and on a
// mismatch raft would only log the error and try again, forever. A snapshot
// removed meanwhile (reaped after a newer one) is not a fault.
type snapshotGuard struct {
	raft.SnapshotStore
	g *diskGuard
}

func (s snapshotGuard) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.g.check("open snapshot "+id, err)
	}
	return meta, rc, err
}

// keyCurrentTerm is the stable-store key under which hashicorp/raft keeps
// its current term (raft.go, keyCurrentTerm, unexported there).
const keyCurrentTerm = "CurrentTerm"

// DiskFailure returns the storage error that stopped this node, or nil while
// its disk has not failed.
func (s *Store) DiskFailure() *DiskFailure {
	if s.disk == nil {
		return nil
	}
	return s.disk.failure()
}

// raftStoppedByDisk reports whether raft has shut down after a disk failure.
func (s *Store) raftStoppedByDisk() bool {
	if s.disk == nil {
		return false
	}
	select {
	case <-s.disk.stoppedCh:
		return true
	default:
		return false
	}
}

// diskErr is ErrDiskFailed with what happened and what to do, or nil.
func (s *Store) diskErr() error {
	f := s.DiskFailure()
	if f == nil {
		return nil
	}
	return fmt.Errorf("%w: %s; this node stopped taking part in the cluster: %s", ErrDiskFailed, f, diskAdvice)
}

// watchDisk waits for the disk to fail, then stops raft: it logs one line,
// ends the watch streams (their clients resume on another node) and shuts
// raft down. It runs on a goroutine of its own because the failure is
// noticed on one of raft's, which raft.Shutdown waits for.
func (s *Store) watchDisk() {
	defer s.wg.Done()
	select {
	case <-s.closing:
		return
	case <-s.disk.failedCh:
	}
	f := s.disk.failure()
	s.log.Error("DISK FAILURE: this node's raft storage returned an error; it stops voting, leading and serving, and answers 503 disk_error. "+
		"Nothing is retried: after a failed write or fsync the file's contents are unknown. To recover, "+diskAdvice,
		"op", f.Op, "err", f.Err, "dir", s.cfg.DataDir)
	s.hub.Close()
	if err := s.raft.Shutdown().Error(); err != nil {
		s.log.Warn("raft shutdown after the disk failure", "err", err)
	}
	close(s.disk.stoppedCh)
	s.log.Info("raft stopped after the disk failure; the node keeps answering HTTP with 503 disk_error until it is restarted")
}

// diskCollector exports quorumkv_disk_failed: 1 once this node's raft
// storage failed and it stopped (DiskFailure), else 0.
type diskCollector struct {
	s    *Store
	desc *prometheus.Desc
}

func newDiskCollector(s *Store) *diskCollector {
	return &diskCollector{s: s, desc: prometheus.NewDesc("quorumkv_disk_failed",
		"1 when this node's raft log or stable store returned an error (I/O error, failed fsync, checksum mismatch) and the node stopped taking part in raft; it then answers 503 disk_error until restarted. 0 otherwise.", nil, nil)}
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if c.s.DiskFailure() != nil {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v)
}
