package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/transport"
)

// errNotCommitted marks an attempt that certainly did not commit (this node was
// not the leader, or the command was never enqueued): the caller may retry it,
// here or at the new leader.
var errNotCommitted = errors.New("not committed")

// writeRequest is a client write as it travels to the leader. It carries a TTL,
// not an absolute time: only the leader stamps expiry times, from its own clock.
type writeRequest struct {
	op    fsm.Op // OpSet or OpDelete
	key   string
	value []byte
	ttlMs int64 // 0 = no expiry
}

// writeResult is the leader's answer to a writeRequest.
type writeResult struct {
	created   bool // set: the key was new (or expired)
	deleted   bool // delete: a live key was removed
	revision  uint64
	expiresAt int64 // Unix ms, 0 = none
}

// Set stores value (compact JSON) under key. ttl 0 means no expiry; otherwise the
// leader stamps an absolute expiry of its clock's now plus ttl.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (SetResult, error) {
	res, err := s.write(ctx, writeRequest{op: fsm.OpSet, key: key, value: value, ttlMs: ttl.Milliseconds()})
	if err != nil {
		return SetResult{}, err
	}
	return SetResult{Created: res.created, Version: res.revision, ExpiresAt: msTime(res.expiresAt)}, nil
}

// Delete removes key. Deleting a missing or expired key is not an error.
func (s *Store) Delete(ctx context.Context, key string) (DeleteResult, error) {
	res, err := s.write(ctx, writeRequest{op: fsm.OpDelete, key: key})
	if err != nil {
		return DeleteResult{}, err
	}
	return DeleteResult{Deleted: res.deleted}, nil
}

// write commits req through the current leader: locally when this node leads,
// otherwise forwarded over the peer port. Attempts that certainly did not commit
// are retried (waiting for a leader) until ctx ends; an attempt that may have
// committed ends the call with ErrOutcomeUnknown.
func (s *Store) write(ctx context.Context, req writeRequest) (writeResult, error) {
	sawLeader := false
	for attempt := 0; ; attempt++ {
		select {
		case <-s.closing:
			return writeResult{}, ErrShuttingDown
		default:
		}
		var res writeResult
		var err error
		addr, id := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			sawLeader = true
			res, err = s.writeAsLeader(ctx, req)
		case addr != "":
			sawLeader = true
			res, err = s.forwardWrite(ctx, string(addr), string(id), req)
		default:
			err = errNotCommitted
		}
		if !errors.Is(err, errNotCommitted) {
			return res, err
		}
		if werr := s.waitForLeader(ctx, attempt); werr != nil {
			if sawLeader && errors.Is(werr, ErrShuttingDown) {
				return writeResult{}, werr
			}
			return writeResult{}, fmt.Errorf("%w: %s", ErrNoLeader, "no leader accepted the write before the deadline")
		}
	}
}

// writeAsLeader stamps req into a command and commits it on this node's raft.
func (s *Store) writeAsLeader(ctx context.Context, req writeRequest) (writeResult, error) {
	now := s.nowMs()
	cmd := fsm.Command{Op: req.op, Key: req.key, Now: now}
	if req.op == fsm.OpSet {
		cmd.Value = req.value
		if req.ttlMs > 0 {
			cmd.ExpiresAt = now + req.ttlMs
		}
	}
	resp, err := s.applyLocal(ctx, cmd)
	if err != nil {
		return writeResult{}, err
	}
	switch r := resp.(type) {
	case fsm.SetResult:
		return writeResult{created: r.Created, revision: r.Revision, expiresAt: r.ExpiresAt}, nil
	case fsm.DeleteResult:
		return writeResult{deleted: r.Deleted, revision: r.Revision}, nil
	default:
		return writeResult{}, fmt.Errorf("store: unexpected apply response %T", resp)
	}
}

// applyLocal proposes cmd to raft on this node and waits for it to be applied
// here. Errors: errNotCommitted (safe to retry), ErrOutcomeUnknown, ErrShuttingDown.
func (s *Store) applyLocal(ctx context.Context, cmd fsm.Command) (interface{}, error) {
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, fmt.Errorf("%w: deadline passed before proposing", errNotCommitted)
		}
	}
	f := s.raft.Apply(cmd.Encode(), timeout)
	resp, err := waitFuture(ctx, f)
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("%w: %v", errNotCommitted, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("%w: no commit before the deadline (%v)", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	default:
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}

// forwardWrite sends req to the leader at addr and relays its answer.
func (s *Store) forwardWrite(ctx context.Context, addr, id string, req writeRequest) (writeResult, error) {
	payload, err := s.rpc.Call(ctx, addr, methodWrite, encodeWriteRequest(req))
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			return writeResult{}, fmt.Errorf("%w: forward to leader %s: %v", errNotCommitted, id, err)
		}
		return writeResult{}, fmt.Errorf("%w: forwarded to leader %s, no answer: %v", ErrOutcomeUnknown, id, err)
	}
	res, status, msg, err := decodeWriteResponse(payload)
	if err != nil {
		return writeResult{}, fmt.Errorf("%w: leader %s sent a malformed answer: %v", ErrOutcomeUnknown, id, err)
	}
	if err := statusError(status, msg); err != nil {
		return writeResult{}, err
	}
	return res, nil
}

// waitForLeader pauses a retry loop until raft reports a leader change, a short
// backoff passes, or ctx ends (ErrNoLeader-worthy) or the node closes.
func (s *Store) waitForLeader(ctx context.Context, attempt int) error {
	backoff := time.Duration(5<<min(attempt, 5)) * time.Millisecond // 5ms .. 160ms
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-s.changed():
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrShuttingDown
	}
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
