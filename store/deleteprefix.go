package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/fsm"
)

// deletePrefixAsLeader runs a bulk delete as a sequence of
// fsm.OpDeletePrefixChunk entries of at most Config.DeletePrefixChunk keys
// (DESIGN.md, "Bulk delete"). The first chunk's index bounds the whole
// operation: only keys last written before it are removed. Every chunk
// carries the request's idempotency key: a retry's first chunk is answered
// from the dedup table with the original's bound, the retry then finishes
// whatever the original left, and both report the recorded total.
//
// If the first chunk did not commit nothing happened and the caller may
// retry (errNotCommitted); once it has, any later failure is
// ErrOutcomeUnknown, since part of the prefix is already gone.
func (s *Store) deletePrefixAsLeader(ctx context.Context, req writeRequest, now int64) (writeResult, error) {
	cmd := fsm.Command{
		Op: fsm.OpDeletePrefixChunk, Key: req.key, Now: now, Limit: uint64(s.cfg.DeletePrefixChunk),
		IdemKey: req.idemKey, Fingerprint: req.fingerprint,
	}
	r, index, err := s.proposeChunk(ctx, cmd)
	if err != nil {
		return writeResult{}, err
	}
	if r.Status != fsm.StatusOK {
		return writeResult{status: r.Status, index: index}, nil
	}
	count, chunks := int64(r.Deleted), 1
	total, recorded := r.Total, r.Recorded
	for r.More {
		cmd.Bound, cmd.After = r.Bound, r.Next
		if cmd.Now, err = s.commandNow(); err == nil {
			r, index, err = s.proposeChunk(ctx, cmd)
		}
		if err != nil {
			if !errors.Is(err, ErrOutcomeUnknown) {
				err = fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
			}
			return writeResult{}, fmt.Errorf("bulk delete of %q stopped after %d chunks (%d keys deleted); part of the prefix may remain: %w",
				req.key, chunks, count, err)
		}
		chunks++
		count += int64(r.Deleted)
		if r.Recorded {
			total, recorded = r.Total, true
		}
	}
	if recorded {
		count = int64(total)
	}
	return writeResult{status: fsm.StatusOK, count: count, revision: index, index: index}, nil
}

// proposeChunk commits one chunk and returns its result and log index.
func (s *Store) proposeChunk(ctx context.Context, cmd fsm.Command) (fsm.DeletePrefixResult, uint64, error) {
	resp, index, err := s.propose(ctx, cmd)
	if err != nil {
		return fsm.DeletePrefixResult{}, 0, err
	}
	r, ok := resp.(fsm.DeletePrefixResult)
	if !ok {
		return fsm.DeletePrefixResult{}, 0, fmt.Errorf("%w: bulk delete chunk answered with %T", ErrOutcomeUnknown, resp)
	}
	return r, index, nil
}
