package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// Write batching (DESIGN.md, "Write batching"): on the leader, client writes
// (set, delete, touch, incr; local or forwarded) go through one proposer
// goroutine that packs the writes queued while earlier batches are in flight
// into a single raft entry (fsm.OpBatch). At most Config.MaxWriteBatchesInFlight
// batches are proposed and not yet applied, so under load each round of
// fsync and replication carries everything that arrived during the previous
// one, and raft's per-entry costs (two msgpack encodings, a bbolt key, a
// future, a follower decode) are paid per batch. A lone write is proposed as
// itself, so an idle cluster writes exactly the entries it always did.

// proposal is one write waiting for the proposer.
type proposal struct {
	cmd   fsm.Command
	state atomic.Int32 // proposalQueued, then proposalTaken by the proposer or proposalAbandoned by its caller
	done  chan proposalResult
}

const (
	proposalQueued int32 = iota
	proposalTaken
	proposalAbandoned
)

// proposalResult is the outcome of a proposed write: its own response (not
// the batch's), the batch's log index, or raft's error.
type proposalResult struct {
	resp  interface{}
	index uint64
	err   error
}

// Batch limits. A batch is also cut short before a write to a key it already
// holds: every write of a batch gets the same revision (the log index), so two
// writes to one key must be in different entries.
const (
	maxBatchWrites = 1024
	maxBatchBytes  = 1 << 20
	// proposeEnqueueTimeout bounds the wait for raft to accept an entry; the
	// in-flight limit keeps raft's queue short, so it is only reached when raft
	// is stuck, and the writes are then retried (errNotCommitted).
	proposeEnqueueTimeout = 5 * time.Second
)

// propose commits a write on this node's raft (which must lead), batched with
// concurrent writes unless batching is off or the command cannot be batched.
// It returns the command's own response and log index; errors as applyLocalIndex.
func (s *Store) propose(ctx context.Context, cmd fsm.Command) (interface{}, uint64, error) {
	if s.cfg.DisableWriteBatching || !cmd.Batchable() {
		return s.applyLocalIndex(ctx, cmd)
	}
	start := time.Now()
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case s.proposals <- p:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: deadline passed before proposing", errNotCommitted)
	case <-s.closing:
		return nil, 0, fmt.Errorf("%w: node shutting down", errNotCommitted)
	}
	var r proposalResult
	select {
	case r = <-p.done:
	case <-ctx.Done():
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, 0, fmt.Errorf("%w: deadline passed before proposing", errNotCommitted)
		}
		return nil, 0, fmt.Errorf("%w: no commit before the deadline (%v)", ErrOutcomeUnknown, ctx.Err())
	case <-s.closing:
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, 0, fmt.Errorf("%w: node shutting down", errNotCommitted)
		}
		r = <-p.done // answered by the close at the latest (bindToClose)
	}
	s.metrics.proposed(cmd.Op, time.Since(start), r.err)
	if r.err != nil {
		return nil, 0, classifyApplyError(r.err)
	}
	return r.resp, r.index, nil
}

// runProposer is the proposer goroutine; it runs for the life of the Store on
// every node (on a follower nothing is queued: writes are forwarded).
func (s *Store) runProposer() {
	defer s.wg.Done()
	keys := make(map[string]struct{})
	var carry *proposal // the write that ended the previous batch, first of the next
	for {
		select {
		case s.batchSlots <- struct{}{}:
		case <-s.closing:
			return
		}
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-s.proposals:
			case <-s.closing:
				return
			}
		}
		if !first.state.CompareAndSwap(proposalQueued, proposalTaken) {
			<-s.batchSlots // its caller gave up; nothing proposed
			continue
		}
		batch := []*proposal{first}
		size := len(first.cmd.Key) + len(first.cmd.Value)
		clear(keys)
		keys[first.cmd.Key] = struct{}{}
	drain:
		for len(batch) < maxBatchWrites && size < maxBatchBytes {
			select {
			case p := <-s.proposals:
				if _, dup := keys[p.cmd.Key]; dup {
					carry = p
					break drain
				}
				if !p.state.CompareAndSwap(proposalQueued, proposalTaken) {
					continue
				}
				keys[p.cmd.Key] = struct{}{}
				batch = append(batch, p)
				size += len(p.cmd.Key) + len(p.cmd.Value)
			default:
				break drain
			}
		}
		s.proposeBatch(batch)
	}
}

// proposeBatch hands batch to raft as one entry and starts the goroutine that
// delivers each write its result and frees the batch's in-flight slot
// (counted in s.tasks, so Close waits for it).
func (s *Store) proposeBatch(batch []*proposal) {
	cmd := batch[0].cmd
	if len(batch) >= fsm.MinBatch {
		ws := make([]fsm.Command, len(batch))
		for i, p := range batch {
			ws[i] = p.cmd
		}
		cmd = fsm.Command{Op: fsm.OpBatch, Now: ws[0].Now, Batch: ws}
	}
	f := s.raft.Apply(cmd.Encode(), proposeEnqueueTimeout)
	s.bindToClose(f)
	s.metrics.writeBatch.Observe(float64(len(batch)))
	s.spawn(func() {
		err := f.Error()
		<-s.batchSlots
		var resp interface{}
		var index uint64
		if err == nil {
			resp, index = f.Response(), f.Index()
		}
		if len(batch) == 1 {
			batch[0].done <- proposalResult{resp: resp, index: index, err: err}
			return
		}
		br, ok := resp.(fsm.BatchResult)
		if err == nil && (!ok || len(br.Results) != len(batch)) {
			err = fmt.Errorf("store: batch of %d writes answered with %T", len(batch), resp)
		}
		for i, p := range batch {
			if err != nil {
				p.done <- proposalResult{err: err}
				continue
			}
			p.done <- proposalResult{resp: br.Results[i], index: index}
		}
	})
}
