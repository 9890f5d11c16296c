package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// RestoreOptions modify an online restore.
type RestoreOptions struct {
	// Force restores a backup whose cluster id differs from this cluster's,
	// or that carries none. The cluster keeps its own id either way.
	Force bool
}

// RestoreChunkBytes is the size of one restore chunk, i.e. of one raft log
// entry. Chunks are proposed one at a time, so at most one is in flight:
// AppendEntries stays small whatever MaxAppendEntries is, and heartbeats and
// client writes interleave with the restore.
const RestoreChunkBytes = 1 << 20

// RestoreResult describes a completed online restore.
type RestoreResult struct {
	Backup  BackupInfo // the backup that was restored
	Index   uint64     // the log index of the commit; every restored key has this version
	Entries int        // entries stored after the restore, expired ones included
	// Forced: the backup's cluster id did not match (or was missing) and
	// RestoreOptions.Force let it through.
	Forced bool
}

// Restore replaces the whole dataset, on every node, with the backup read from
// r. It first copies r to a temporary file in the data dir and verifies it
// completely (SHA-256 and structure): a damaged backup fails with ErrBadBackup
// and changes nothing. It then proposes the backup's snapshot stream in
// RestoreChunkBytes chunks, which every replica stages, and one commit that
// swaps the staged state in at a single log index: before it every read sees
// the old data, after it the backup's (versions renumbered to that index,
// absolute expiries kept, so keys already expired stay invisible). Writes
// committed before the commit are replaced by it.
//
// The backup must come from this cluster: its cluster id must be this
// cluster's (checked after a linearizable read, so the id is known), unless
// opts.Force. A backup without an id (an older file) needs Force too.
//
// One restore runs at a time: a second call on this node while one runs, or
// a restore whose first chunk finds another restore staged and active in the
// cluster (fsm.RestoreAbandonedMs), fails with ErrRestoreInProgress.
//
// Errors: ErrBadBackup; ErrClusterMismatch and ErrRestoreInProgress (nothing
// changed); ErrRestoreInterrupted (nothing changed); ErrOutcomeUnknown (the
// commit may or may not have applied); read errors from r are returned
// wrapped.
func (s *Store) Restore(ctx context.Context, r io.Reader, opts RestoreOptions) (RestoreResult, error) {
	if !s.restoring.CompareAndSwap(false, true) {
		return RestoreResult{}, fmt.Errorf("%w on this node", ErrRestoreInProgress)
	}
	defer s.restoring.Store(false)
	tmp, err := os.CreateTemp(s.cfg.DataDir, "restore-*.tmp")
	if err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: buffer upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: read upload: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	info, err := fsm.VerifyBackup(tmp)
	if err != nil {
		return RestoreResult{Backup: info}, backupError(err)
	}
	forced, err := s.checkBackupCluster(ctx, info, opts)
	if err != nil {
		return RestoreResult{Backup: info}, err
	}
	body := io.NewSectionReader(tmp, int64(info.HeaderSize), size-int64(info.HeaderSize+fsm.BackupTrailerSize))

	id := newRestoreID()
	log := s.log.With("restore", fmt.Sprintf("%016x", id))
	if forced {
		log.Warn("online restore: FORCED past the cluster check", "backup_cluster_id", info.ClusterID, "cluster_id", s.fsm.ClusterID())
	}
	log.Info("online restore: staging", "backup_index", info.Index, "entries", info.Entries, "bytes", info.Size, "backup_cluster_id", info.ClusterID)
	start := time.Now()
	buf := make([]byte, RestoreChunkBytes)
	var seq uint64
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 || seq == 0 {
			res, err := s.proposeRestore(ctx, fsm.Command{Op: fsm.OpRestoreChunk, RestoreID: id, RestoreSeq: seq, RestoreData: buf[:n]})
			if err == nil && res.Busy {
				// Nothing of ours is staged: another restore holds the area.
				return RestoreResult{Backup: info}, fmt.Errorf("%w: %s", ErrRestoreInProgress, res.Reason)
			}
			if err == nil && !res.OK {
				err = fmt.Errorf("%w: chunk %d: %s", ErrRestoreInterrupted, seq, res.Reason)
			}
			if err != nil {
				s.abortRestore(id)
				return RestoreResult{Backup: info}, interrupted(err)
			}
			seq++
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			s.abortRestore(id)
			return RestoreResult{Backup: info}, fmt.Errorf("%w: reading the buffered backup: %v", ErrRestoreInterrupted, rerr)
		}
	}
	res, err := s.proposeRestore(ctx, fsm.Command{Op: fsm.OpRestoreCommit, RestoreID: id, RestoreSeq: seq})
	if err != nil {
		if !errors.Is(err, ErrOutcomeUnknown) {
			s.abortRestore(id)
			err = interrupted(err)
		}
		return RestoreResult{Backup: info}, err
	}
	if !res.OK {
		return RestoreResult{Backup: info}, fmt.Errorf("%w: commit: %s", ErrRestoreInterrupted, res.Reason)
	}
	log.Info("online restore: committed", "index", res.Revision, "entries", res.Entries, "chunks", seq, "took", time.Since(start))
	return RestoreResult{Backup: info, Index: res.Revision, Entries: res.Entries, Forced: forced}, nil
}

// checkBackupCluster compares the backup's cluster id with this cluster's,
// read after a linearizable read (so the id a new leader records before it
// serves reads is applied here). forced is true when only opts.Force let a
// mismatch through.
func (s *Store) checkBackupCluster(ctx context.Context, info BackupInfo, opts RestoreOptions) (forced bool, err error) {
	if _, _, err := s.prepareRead(ctx, ReadOptions{Level: Linearizable}, nil, nil); err != nil {
		return false, err
	}
	own := s.fsm.ClusterID()
	var mismatch error
	switch {
	case info.ClusterID == "":
		mismatch = fmt.Errorf("%w: the backup carries no cluster id (it was written before backups named their cluster, or before the cluster recorded its id); this is cluster %s", ErrClusterMismatch, own)
	case info.ClusterID != own:
		mismatch = fmt.Errorf("%w: the backup is from cluster %s, this is cluster %s", ErrClusterMismatch, info.ClusterID, own)
	}
	if mismatch != nil && !opts.Force {
		return false, mismatch
	}
	return mismatch != nil, nil
}

// interrupted marks a failure before the commit as ErrRestoreInterrupted
// (nothing changed), keeping its cause's text.
func interrupted(err error) error {
	if errors.Is(err, ErrRestoreInterrupted) || errors.Is(err, ErrShuttingDown) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrRestoreInterrupted, err)
}

func newRestoreID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// abortRestore drops the staged restore id, best effort: a staged restore is
// also dropped by the next one to start.
func (s *Store) abortRestore(id uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.proposeRestore(ctx, fsm.Command{Op: fsm.OpRestoreAbort, RestoreID: id}); err != nil {
		s.log.Warn("online restore: abort not committed; the next restore replaces the staged data", "err", err)
	}
}

// proposeRestore commits one restore command through the leader (forwarding
// it when this node does not lead), retrying attempts that certainly did not
// commit until ctx ends.
func (s *Store) proposeRestore(ctx context.Context, cmd fsm.Command) (fsm.RestoreResult, error) {
	return throughLeader(ctx, s, "restore",
		func(ctx context.Context) (fsm.RestoreResult, error) { return s.restoreAsLeader(ctx, cmd) },
		func(ctx context.Context, addr, id string) (fsm.RestoreResult, error) {
			return s.forwardRestore(ctx, addr, id, cmd)
		})
}

// restoreAsLeader stamps cmd with this leader's clock and commits it.
func (s *Store) restoreAsLeader(ctx context.Context, cmd fsm.Command) (fsm.RestoreResult, error) {
	now, err := s.stampNow()
	if err != nil {
		return fsm.RestoreResult{}, fmt.Errorf("%w: %w", errNotCommitted, err)
	}
	cmd.Now = now
	resp, err := s.applyLocal(ctx, cmd)
	if err != nil {
		return fsm.RestoreResult{}, err
	}
	res, ok := resp.(fsm.RestoreResult)
	if !ok {
		return fsm.RestoreResult{}, fmt.Errorf("store: unexpected apply response %T", resp)
	}
	return res, nil
}

func (s *Store) forwardRestore(ctx context.Context, addr, id string, cmd fsm.Command) (fsm.RestoreResult, error) {
	payload, err := s.callLeader(ctx, addr, methodRestore, cmd.Encode())
	if err != nil {
		return fsm.RestoreResult{}, unsent(id, err)
	}
	res, w, err := decodeRestoreResponse(payload)
	if err != nil {
		return fsm.RestoreResult{}, fmt.Errorf("%w: leader %s sent a malformed answer: %v", ErrOutcomeUnknown, id, err)
	}
	if err := w.err(); err != nil {
		return fsm.RestoreResult{}, err
	}
	return res, nil
}

// handleRestoreRPC serves methodRestore on the leader.
func (s *Store) handleRestoreRPC(ctx context.Context, req []byte) ([]byte, error) {
	cmd, err := fsm.Decode(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad restore request: %w", err)
	}
	switch cmd.Op {
	case fsm.OpRestoreChunk, fsm.OpRestoreCommit, fsm.OpRestoreAbort:
	default:
		return nil, fmt.Errorf("store: restore request carries a %s command", cmd.Op)
	}
	var res fsm.RestoreResult
	if s.raft.State() != raft.Leader {
		err = fmt.Errorf("%w: %s is not the leader", errNotCommitted, s.cfg.NodeID)
	} else {
		res, err = s.restoreAsLeader(ctx, cmd)
	}
	return encodeRestoreResponse(res, toWire(err)), nil
}

// Restore answer: status byte, uvarint len(msg) msg, ok byte,
// uvarint len(reason) reason, uvarint entries, uvarint revision, then a flags
// byte (bit 0: busy). It has no format byte (the first restore answers had
// none); a leader that predates the flags byte omits it.
func encodeRestoreResponse(res fsm.RestoreResult, w wireError) []byte {
	b := appendString([]byte{byte(w.status)}, w.msg)
	b = append(b, flag(res.OK))
	b = appendString(b, res.Reason)
	b = binary.AppendUvarint(b, uint64(res.Entries))
	b = binary.AppendUvarint(b, res.Revision)
	var flags byte
	if res.Busy {
		flags |= restoreFlagBusy
	}
	return append(b, flags)
}

const restoreFlagBusy = 1 << 0

func decodeRestoreResponse(b []byte) (fsm.RestoreResult, wireError, error) {
	d := decoder{b: b}
	w := wireError{status: rpcStatus(d.byte()), msg: d.string()}
	res := fsm.RestoreResult{OK: d.byte() == 1, Reason: d.string(), Entries: int(d.uvarint()), Revision: d.uvarint()}
	if d.err == nil && len(d.b) > 0 { // the flags byte
		flags := d.byte()
		if flags&^restoreFlagBusy != 0 {
			d.err = fmt.Errorf("unknown restore flags %#x", flags)
		}
		res.Busy = flags&restoreFlagBusy != 0
	}
	if err := d.done(); err != nil {
		return fsm.RestoreResult{}, wireError{}, fmt.Errorf("truncated or malformed restore answer: %w", err)
	}
	return res, w, nil
}
