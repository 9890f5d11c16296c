package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// errNotReadyLeader: this node is not (yet) a leader that may serve reads: it is
// a follower, or a new leader whose barrier has not committed in its term.
var errNotReadyLeader = errors.New("not a ready leader")

// readIndexRequest asks readLoop for a confirmed read index.
type readIndexRequest struct {
	done chan readIndexResult // buffered(1): readLoop never blocks on it
}

type readIndexResult struct {
	index uint64
	nowMs int64 // the leader's clock when the index was taken; expiry is judged at it
	err   error
}

// Get returns the live entry for key. Linearizable reads observe every write
// acknowledged before Get was called; Stale reads return this node's state.
func (s *Store) Get(ctx context.Context, key string, level ReadLevel) (Item, error) {
	now := s.nowMs()
	if level != Stale && !brokenReads {
		idx, leaderNow, err := s.readIndex(ctx)
		if err != nil {
			return Item{}, err
		}
		if err := s.fsm.WaitApplied(ctx, idx); err != nil {
			return Item{}, fmt.Errorf("%w: waiting to apply index %d (applied %d)", ErrTimeout, idx, s.fsm.AppliedIndex())
		}
		now = leaderNow
	}
	e, ok := s.fsm.Get(key, now)
	if !ok {
		return Item{}, ErrNotFound
	}
	return Item{Key: key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}, nil
}

// readIndex returns an index such that state applied up to it reflects every
// write acknowledged before the call, and the leader's clock at that point. It
// asks the local read loop when this node leads, the leader otherwise, and
// retries until ctx ends.
func (s *Store) readIndex(ctx context.Context) (uint64, int64, error) {
	sawLeader := false
	var last error
	for attempt := 0; ; attempt++ {
		var idx uint64
		var now int64
		var err error
		addr, _ := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			sawLeader = true
			idx, now, err = s.leaderReadIndex(ctx)
		case addr != "":
			sawLeader = true
			idx, now, err = s.remoteReadIndex(ctx, string(addr))
		default:
			err = errNotReadyLeader
		}
		if err == nil {
			return idx, now, nil
		}
		last = err
		if werr := s.waitForLeader(ctx, attempt); werr != nil {
			if errors.Is(werr, ErrShuttingDown) {
				return 0, 0, werr
			}
			if !sawLeader {
				return 0, 0, fmt.Errorf("%w: no leader known before the deadline", ErrNoLeader)
			}
			return 0, 0, fmt.Errorf("%w: could not confirm a read index with the leader: %v", ErrTimeout, last)
		}
	}
}

func (s *Store) remoteReadIndex(ctx context.Context, addr string) (uint64, int64, error) {
	payload, err := s.rpc.Call(ctx, addr, methodReadIndex, nil)
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			return 0, 0, fmt.Errorf("%w: %v", errNotReadyLeader, err)
		}
		return 0, 0, err
	}
	idx, now, st, msg, err := decodeReadIndexResponse(payload)
	if err != nil {
		return 0, 0, fmt.Errorf("store: malformed read index answer: %w", err)
	}
	if st != statusOK {
		return 0, 0, fmt.Errorf("%w: leader: %s", errNotReadyLeader, msg)
	}
	return idx, now, nil
}

// leaderReadIndex queues a request for readLoop and waits for its answer.
func (s *Store) leaderReadIndex(ctx context.Context) (uint64, int64, error) {
	if s.raft.State() != raft.Leader || s.readyTerm.Load() == 0 {
		return 0, 0, errNotReadyLeader
	}
	req := &readIndexRequest{done: make(chan readIndexResult, 1)}
	select {
	case s.reads <- req:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-s.closing:
		return 0, 0, ErrShuttingDown
	}
	select {
	case res := <-req.done:
		return res.index, res.nowMs, res.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// readLoop confirms read indexes in batches (ReadIndex, Raft thesis §6.4): every
// request that arrived before a round starts shares that round's single
// leadership check, so verification cost follows round trips, not request rate.
func (s *Store) readLoop() {
	defer s.wg.Done()
	batch := make([]*readIndexRequest, 0, 256)
	for {
		select {
		case <-s.closing:
			return
		case req := <-s.reads:
			batch = append(batch[:0], req)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case req := <-s.reads:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		idx, now, err := s.confirmReadIndex()
		for _, req := range batch {
			req.done <- readIndexResult{index: idx, nowMs: now, err: err}
		}
	}
}

// confirmReadIndex takes the commit index and proves this node was still the
// leader after taking it. The term's barrier must have committed first, so the
// commit index covers every entry acknowledged by earlier leaders.
func (s *Store) confirmReadIndex() (uint64, int64, error) {
	term := s.raft.CurrentTerm()
	if s.raft.State() != raft.Leader || s.readyTerm.Load() != term {
		return 0, 0, errNotReadyLeader
	}
	idx := s.raft.CommitIndex()
	now := s.nowMs()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, fmt.Errorf("%w: leadership check failed: %v", errNotReadyLeader, err)
	}
	if s.raft.CurrentTerm() != term {
		return 0, 0, fmt.Errorf("%w: term changed during the leadership check", errNotReadyLeader)
	}
	return idx, now, nil
}
