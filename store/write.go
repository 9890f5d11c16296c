package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// writeRequest is a client write as it travels to the leader. It carries TTLs,
// not absolute times: only the leader stamps expiry times, from its own clock.
type writeRequest struct {
	op    fsm.Op // OpSet, OpDelete, OpTouch, OpIncr or OpDeletePrefix
	key   string // the prefix for OpDeletePrefix
	value []byte
	ttlMs int64 // set, touch: 0 = no expiry; incr: applied only on creation

	cond        fsm.Cond
	condVersion uint64
	keepTTL     bool
	by          int64
	idemKey     string
	fingerprint [fsm.FingerprintSize]byte

	txn *txnRequest // OpTxn: the checks and operations (txn.go)
}

// plain reports whether req is expressible in forwarding format 1 (the
// original set/delete), so an upgraded follower can still forward it to a
// leader that only knows format 1.
func (r writeRequest) plain() bool {
	return (r.op == fsm.OpSet || r.op == fsm.OpDelete) && r.cond == fsm.CondNone && !r.keepTTL && r.idemKey == ""
}

// writeResult is the leader's answer to a writeRequest.
type writeResult struct {
	status    fsm.Status
	created   bool // set, incr: the key was new (or expired)
	deleted   bool // delete: a live key was removed
	revision  uint64
	expiresAt int64  // Unix ms, 0 = none
	current   uint64 // failed condition: the live version, 0 = absent
	value     int64  // incr: the new value
	count     int64  // delete-prefix: live keys removed
	index     uint64 // the log index of the command
	txn       *fsm.TxnResult
}

// err maps a business failure to the store's errors.
func (r writeResult) err() error {
	switch r.status {
	case fsm.StatusOK:
		return nil
	case fsm.StatusVersionMismatch:
		return &ConditionError{Err: ErrVersionMismatch, CurrentVersion: r.current}
	case fsm.StatusAlreadyExists:
		return &ConditionError{Err: ErrAlreadyExists, CurrentVersion: r.current}
	case fsm.StatusNotAnInteger:
		return &ConditionError{Err: ErrNotAnInteger, CurrentVersion: r.current}
	case fsm.StatusOverflow:
		return &ConditionError{Err: ErrOverflow, CurrentVersion: r.current}
	case fsm.StatusNotFound:
		return ErrNotFound
	case fsm.StatusIdempotencyKeyReused:
		return ErrIdempotencyKeyReused
	case fsm.StatusIdempotencyTableFull:
		return ErrIdempotencyTableFull
	}
	return fmt.Errorf("store: unknown write status %d", r.status)
}

// Set stores value (compact JSON) under key. ttl 0 means no expiry; otherwise the
// leader stamps an absolute expiry of its clock's now plus ttl.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (SetResult, error) {
	return s.Put(ctx, key, value, ttl, false, WriteOptions{})
}

// Put is Set with conditions and an idempotency key. keepTTL keeps the live
// key's expiry (ttl must then be 0); a missing key gets none.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration, keepTTL bool, opts WriteOptions) (SetResult, error) {
	if err := CheckTTL(ttl); err != nil {
		return SetResult{}, err
	}
	req := writeRequest{op: fsm.OpSet, key: key, value: value, ttlMs: ttl.Milliseconds(), keepTTL: keepTTL}
	res, err := s.writeWith(ctx, req, opts)
	if err != nil {
		return SetResult{}, err
	}
	return SetResult{Created: res.created, Version: res.revision, ExpiresAt: msTime(res.expiresAt), Index: res.index}, nil
}

// Delete removes key. Deleting a missing or expired key is not an error.
func (s *Store) Delete(ctx context.Context, key string) (DeleteResult, error) {
	return s.DeleteIf(ctx, key, WriteOptions{})
}

// DeleteIf is Delete with an optional IfMatch condition and idempotency key.
// With IfMatch, a missing key is ErrVersionMismatch.
func (s *Store) DeleteIf(ctx context.Context, key string, opts WriteOptions) (DeleteResult, error) {
	res, err := s.writeWith(ctx, writeRequest{op: fsm.OpDelete, key: key}, opts)
	if err != nil {
		return DeleteResult{}, err
	}
	return DeleteResult{Deleted: res.deleted, Index: res.index}, nil
}

// Touch replaces the expiry of a live key without changing its value: ttl 0
// removes the expiry. The key gets a new version. A missing or expired key is
// ErrNotFound.
func (s *Store) Touch(ctx context.Context, key string, ttl time.Duration, opts WriteOptions) (SetResult, error) {
	if err := CheckTTL(ttl); err != nil {
		return SetResult{}, err
	}
	res, err := s.writeWith(ctx, writeRequest{op: fsm.OpTouch, key: key, ttlMs: ttl.Milliseconds()}, opts)
	if err != nil {
		return SetResult{}, err
	}
	return SetResult{Version: res.revision, ExpiresAt: msTime(res.expiresAt), Index: res.index}, nil
}

// Incr adds by to the integer at key, creating it (from 0, with ttl when ttl >
// 0) if it is missing or expired. Errors: ErrNotAnInteger, ErrOverflow.
func (s *Store) Incr(ctx context.Context, key string, by int64, ttl time.Duration, opts WriteOptions) (IncrResult, error) {
	if err := CheckTTL(ttl); err != nil {
		return IncrResult{}, err
	}
	res, err := s.writeWith(ctx, writeRequest{op: fsm.OpIncr, key: key, by: by, ttlMs: ttl.Milliseconds()}, opts)
	if err != nil {
		return IncrResult{}, err
	}
	return IncrResult{Created: res.created, Value: res.value, Version: res.revision, ExpiresAt: msTime(res.expiresAt), Index: res.index}, nil
}

// DeletePrefix deletes every key starting with prefix that was last written
// before the call began, in chunks of at most Config.DeletePrefixChunk keys
// (one log entry each): readers may see a partly deleted prefix while it
// runs. Deleted counts every live key removed. See DESIGN.md, "Bulk delete".
func (s *Store) DeletePrefix(ctx context.Context, prefix string, opts WriteOptions) (DeletePrefixResult, error) {
	res, err := s.writeWith(ctx, writeRequest{op: fsm.OpDeletePrefix, key: prefix}, opts)
	if err != nil {
		return DeletePrefixResult{}, err
	}
	return DeletePrefixResult{Deleted: int(res.count), Index: res.index}, nil
}

// writeWith applies opts to req, commits it and turns a business failure into
// its error.
func (s *Store) writeWith(ctx context.Context, req writeRequest, opts WriteOptions) (writeResult, error) {
	switch {
	case opts.IfMatch != nil && opts.IfAbsent:
		return writeResult{}, invalid(ErrInvalidWrite, "IfMatch and IfAbsent are exclusive")
	case opts.IfMatch != nil:
		req.cond, req.condVersion = fsm.CondIfMatch, *opts.IfMatch
	case opts.IfAbsent:
		req.cond = fsm.CondIfAbsent
	}
	req.idemKey, req.fingerprint = scopedIdempotencyKey(opts.IdempotencyScope, opts.IdempotencyKey), opts.Fingerprint
	res, err := s.write(ctx, req)
	if err != nil {
		return writeResult{}, err
	}
	return res, res.err()
}

// write commits req through the current leader: locally when this node leads,
// otherwise forwarded over the peer port. Attempts that certainly did not commit
// are retried (waiting for a leader) until ctx ends; an attempt that may have
// committed ends the call with ErrOutcomeUnknown.
func (s *Store) write(ctx context.Context, req writeRequest) (writeResult, error) {
	return throughLeader(ctx, s, "write",
		func(ctx context.Context) (writeResult, error) { return s.writeAsLeader(ctx, req) },
		func(ctx context.Context, addr, id string) (writeResult, error) {
			return s.forwardWrite(ctx, addr, id, req)
		})
}

// writeAsLeader checks req against the write rules (validate.go), stamps it
// into a command and commits it on this node's raft. Every client write, from
// this node's API or forwarded by a peer, becomes a command here and only
// here, so none reaches the log unchecked. A new idempotent write the dedup
// table has no room for is answered StatusIdempotencyTableFull without being
// proposed (idempotency.go).
func (s *Store) writeAsLeader(ctx context.Context, req writeRequest) (writeResult, error) {
	if req.op == fsm.OpTxn {
		return s.txnAsLeader(ctx, req)
	}
	if err := req.check(s.cfg.MaxValueBytes); err != nil {
		return writeResult{}, err
	}
	now, err := s.commandNow()
	if err != nil {
		// Nothing proposed: the caller waits for a leader whose clock is
		// within bound (this one hands leadership over) and retries.
		return writeResult{}, fmt.Errorf("%w: %w", errNotCommitted, err)
	}
	if err := s.checkQuota(req, now); err != nil {
		return writeResult{}, err
	}
	if req.op == fsm.OpDeletePrefix {
		return s.deletePrefixAsLeader(ctx, req, now)
	}
	cmd := fsm.Command{
		Op: req.op, Key: req.key, Now: now,
		Cond: req.cond, CondVersion: req.condVersion,
		IdemKey: req.idemKey, Fingerprint: req.fingerprint,
	}
	if req.ttlMs > 0 {
		cmd.ExpiresAt = now + req.ttlMs
	}
	switch req.op {
	case fsm.OpSet:
		cmd.Value = req.value
		cmd.KeepTTL = req.keepTTL
		if req.keepTTL {
			cmd.ExpiresAt = 0
		}
	case fsm.OpIncr:
		cmd.By = req.by
	case fsm.OpDelete, fsm.OpDeletePrefix:
		cmd.ExpiresAt = 0
	}
	resp, index, err := s.proposeAdmitted(ctx, cmd)
	if err != nil {
		return notProposed(err)
	}
	res := writeResult{index: index}
	switch r := resp.(type) {
	case fsm.SetResult:
		res.status, res.created, res.revision, res.expiresAt, res.current = r.Status, r.Created, r.Revision, r.ExpiresAt, r.Current
	case fsm.DeleteResult:
		res.status, res.deleted, res.revision, res.current = r.Status, r.Deleted, r.Revision, r.Current
	case fsm.IncrResult:
		res.status, res.created, res.value, res.revision, res.expiresAt, res.current = r.Status, r.Created, r.Value, r.Revision, r.ExpiresAt, r.Current
	case fsm.DeletePrefixResult:
		res.status, res.count, res.revision = r.Status, int64(r.Deleted), r.Revision
	default:
		return writeResult{}, fmt.Errorf("store: unexpected apply response %T", resp)
	}
	return res, nil
}

// errDedupFull: proposeAdmitted found no room in the dedup table for a new
// idempotent command and proposed nothing.
var errDedupFull = errors.New("dedup table full")

// proposeAdmitted proposes cmd (see propose), after reserving room in the
// dedup table when it carries an idempotency key (errDedupFull when there is
// none: nothing was proposed).
func (s *Store) proposeAdmitted(ctx context.Context, cmd fsm.Command) (interface{}, uint64, error) {
	if cmd.IdemKey != "" {
		release, ok := s.admitIdempotent(&cmd)
		if !ok {
			return nil, 0, errDedupFull
		}
		defer release()
	}
	return s.propose(ctx, cmd)
}

// notProposed answers a write proposeAdmitted failed: a full dedup table is
// the write's result (StatusIdempotencyTableFull), anything else its error.
func notProposed(err error) (writeResult, error) {
	if errors.Is(err, errDedupFull) {
		return writeResult{status: fsm.StatusIdempotencyTableFull}, nil
	}
	return writeResult{}, err
}

// applyLocal proposes cmd to raft on this node and waits for it to be applied
// here. Errors: errNotCommitted (safe to retry), ErrOutcomeUnknown, ErrShuttingDown.
func (s *Store) applyLocal(ctx context.Context, cmd fsm.Command) (interface{}, error) {
	resp, _, err := s.applyLocalIndex(ctx, cmd)
	return resp, err
}

// applyLocalIndex is applyLocal that also returns the command's log index.
func (s *Store) applyLocalIndex(ctx context.Context, cmd fsm.Command) (interface{}, uint64, error) {
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, 0, fmt.Errorf("%w: deadline passed before proposing", errNotCommitted)
		}
	}
	start := time.Now()
	f := s.raft.Apply(cmd.Encode(), timeout)
	resp, err := s.waitFuture(ctx, f)
	s.metrics.proposed(cmd.Op, time.Since(start), err)
	if err != nil {
		return nil, 0, classifyApplyError(err)
	}
	return resp, f.Index(), nil
}

// classifyApplyError maps a failed proposal to errNotCommitted (raft certainly
// did not commit it: safe to retry) or ErrOutcomeUnknown.
func classifyApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", errNotCommitted, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: no commit before the deadline (%v)", ErrOutcomeUnknown, err)
	default: // ErrLeadershipLost, ErrRaftShutdown, anything else
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
