package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// BackupInfo describes a backup file: format version, creation time (Unix
// ms), the raft index it reflects, entry counts, the cluster id, size and
// SHA-256.
type BackupInfo = fsm.BackupInfo

// BackupSnapshot is a consistent point-in-time copy of the data, frozen when
// Store.Backup returned and streamed later by Stream. Close releases it.
type BackupSnapshot interface {
	// Index is the raft index the backup reflects: every write acknowledged
	// with an index at or below it is in the backup, none after it.
	Index() uint64
	// Entries is the number of stored entries (expired ones not yet removed
	// included).
	Entries() int
	// ClusterID is the id of the cluster the backup is taken from ("" when
	// none is recorded yet).
	ClusterID() string
	// WriteTo streams the backup file to w and returns its description,
	// SHA-256 included. It holds no lock: applies continue meanwhile.
	Stream(w io.Writer) (BackupInfo, error)
	// Close releases the frozen state.
	Close()
}

type backup struct {
	b         *fsm.Backup
	createdAt int64
}

func (b *backup) Index() uint64                          { return b.b.Index() }
func (b *backup) Entries() int                           { return b.b.Entries() }
func (b *backup) ClusterID() string                      { return b.b.ClusterID() }
func (b *backup) Stream(w io.Writer) (BackupInfo, error) { return b.b.Stream(w, b.createdAt) }
func (b *backup) Close()                                 { b.b.Release() }

// Backup freezes this node's state for a backup. At Linearizable it first
// confirms a read index with the leader and waits for this node's state
// machine to reach it, so the backup holds every write acknowledged before the
// call; at Stale it freezes the local state as it is. Either way the copy is
// O(1) (copy-on-write trees) and taken between two applies, so it is exactly
// the state at one log index.
func (s *Store) Backup(ctx context.Context, level ReadLevel) (BackupSnapshot, error) {
	if _, _, err := s.prepareRead(ctx, ReadOptions{Level: level}, nil, nil); err != nil {
		return nil, err
	}
	return &backup{b: s.fsm.Backup(), createdAt: s.nowMs()}, nil
}

// SeedFromBackup prepares an empty data dir so that a node started on it
// holds the backup's data: it verifies the backup read from src completely
// (SHA-256 trailer and structure) before touching anything, then writes it
// as a raft snapshot at the backup's index (term 1) whose configuration is
// voters (this node alone when empty). The node then starts from that
// snapshot instead of bootstrapping, exactly as after a restart.
//
// Every node of the new cluster must be seeded with the same file and the same
// voters: each then starts with identical state and log position, and the
// first leader continues the log after the backup's index, so versions keep
// growing. dataDir must hold no raft state (its raft directory must be missing
// or empty). The snapshot is built in a temporary directory and renamed into
// place, so a failure leaves dataDir as it was.
func SeedFromBackup(src io.ReadSeeker, dataDir, nodeID string, voters []Peer) (BackupInfo, error) {
	info, err := fsm.VerifyBackup(src)
	if err != nil {
		return info, backupError(err)
	}
	if len(voters) == 0 {
		return info, errors.New("store: seed: no voters (list at least this node)")
	}
	self := false
	var cfg raft.Configuration
	for _, p := range voters {
		self = self || p.ID == nodeID
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	if !self {
		return info, fmt.Errorf("store: seed: voters must include this node %q", nodeID)
	}
	raftDir := filepath.Join(dataDir, "raft")
	if entries, err := os.ReadDir(raftDir); err == nil && len(entries) > 0 {
		return info, fmt.Errorf("store: seed: %s already holds raft state; restore needs an empty data dir (move the old one aside)", raftDir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("store: seed: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return info, fmt.Errorf("store: seed: create data dir: %w", err)
	}
	tmp, err := os.MkdirTemp(dataDir, ".raft-restore-*")
	if err != nil {
		return info, fmt.Errorf("store: seed: %w", err)
	}
	defer os.RemoveAll(tmp) // after a successful rename, nothing is left to remove

	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return info, fmt.Errorf("store: seed: rewind backup: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(tmp, 2, hclog.NewNullLogger())
	if err != nil {
		return info, fmt.Errorf("store: seed: snapshot store: %w", err)
	}
	// raft needs a snapshot index of at least 1; a state machine that never
	// applied anything has index 0, and its state is empty either way.
	index := max(info.Index, 1)
	// The snapshot store encodes the configuration's peer addresses with the
	// transport; the network transport writes an address as its bytes, as the
	// in-memory one does.
	_, enc := raft.NewInmemTransport("")
	defer enc.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, 1, cfg, index, enc)
	if err != nil {
		return info, fmt.Errorf("store: seed: create snapshot: %w", err)
	}
	if _, err := fsm.CopyBackupBody(src, sink); err != nil {
		_ = sink.Cancel()
		return info, fmt.Errorf("store: seed: write snapshot: %w", backupError(err))
	}
	if err := sink.Close(); err != nil {
		return info, fmt.Errorf("store: seed: close snapshot: %w", err)
	}
	if err := os.Remove(raftDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("store: seed: %w", err)
	}
	if err := os.Rename(tmp, raftDir); err != nil {
		return info, fmt.Errorf("store: seed: move snapshot into place: %w", err)
	}
	return info, nil
}

// backupError marks fsm's bad-backup errors with ErrBadBackup.
func backupError(err error) error {
	if errors.Is(err, fsm.ErrBadBackup) {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return err
}
