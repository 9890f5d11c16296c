package store

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	it, _, err := s.Read(ctx, key, ReadOptions{Level: level})
	return it, err
}

// Read is Get with read options, also describing the state it was served from.
func (s *Store) Read(ctx context.Context, key string, opts ReadOptions) (Item, ReadInfo, error) {
	now, info, err := s.prepareRead(ctx, opts)
	if err != nil {
		return Item{}, info, err
	}
	e, ok := s.fsm.Get(key, now)
	if !ok {
		return Item{}, info, ErrNotFound
	}
	return Item{Key: key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}, info, nil
}

// List returns a page of live keys with req.Prefix strictly after req.After,
// in byte order, at the requested read level: a linearizable page reflects
// every write acknowledged before List was called.
func (s *Store) List(ctx context.Context, req ListRequest) (ListResult, ReadInfo, error) {
	if req.Limit < 1 {
		return ListResult{}, ReadInfo{}, fmt.Errorf("store: list limit must be positive, got %d", req.Limit)
	}
	now, info, err := s.prepareRead(ctx, req.ReadOptions)
	if err != nil {
		return ListResult{}, info, err
	}
	entries, more := s.fsm.List(req.Prefix, req.After, req.Limit, now)
	res := ListResult{Items: make([]Item, len(entries)), More: more}
	for i, e := range entries {
		res.Items[i] = Item{Key: e.Key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}
	}
	return res, info, nil
}

// prepareRead waits until this node may serve a read with opts and returns the
// clock at which to judge expiry: for MinIndex, until the local state machine
// applied it; for a linearizable read, until it applied a confirmed read index
// (then expiry is judged at the leader's clock); a stale read uses the local
// clock. Either way, never a time before the last applied command's.
func (s *Store) prepareRead(ctx context.Context, opts ReadOptions) (int64, ReadInfo, error) {
	if opts.MinIndex > 0 {
		if err := s.fsm.WaitApplied(ctx, opts.MinIndex); err != nil {
			return 0, s.readInfo(), fmt.Errorf("%w: index %d not applied before the deadline (applied %d)",
				ErrIndexNotReached, opts.MinIndex, s.fsm.AppliedIndex())
		}
	}
	now := s.nowMs()
	if opts.Level != Stale && !brokenReads {
		idx, leaderNow, err := s.readIndex(ctx)
		if err != nil {
			return 0, s.readInfo(), err
		}
		if err := s.fsm.WaitApplied(ctx, idx); err != nil {
			return 0, s.readInfo(), fmt.Errorf("%w: waiting to apply index %d (applied %d)", ErrTimeout, idx, s.fsm.AppliedIndex())
		}
		now = leaderNow
	}
	// Command time never runs backwards (idempotency.go): an entry expired at
	// the last applied command's time stays hidden, whatever the clock says.
	now = max(now, s.fsm.LastNow())
	return now, s.readInfo(), nil
}

// readInfo describes this node's state now.
func (s *Store) readInfo() ReadInfo {
	info := ReadInfo{AppliedIndex: s.fsm.AppliedIndex()}
	if s.raft.State() != raft.Leader {
		info.Follower = true
		if lc := s.raft.LastContact(); !lc.IsZero() {
			info.LastContact = max(time.Since(lc), 0) // raft stamps LastContact with time.Now
		}
	}
	return info
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
			idx, now, err = s.followerReadIndex(ctx)
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
			if errors.Is(last, ErrClockOffset) {
				return 0, 0, fmt.Errorf("could not confirm a read index before the deadline: %w", last)
			}
			return 0, 0, fmt.Errorf("%w: could not confirm a read index with the leader: %v", ErrTimeout, last)
		}
	}
}

// remoteReadTimeout bounds one batch's read-index call to the leader; a
// request whose own deadline is longer retries in readIndex's loop.
const remoteReadTimeout = 3 * time.Second

// followerReadIndex queues a request for remoteReadLoop and waits for its
// answer: concurrent reads on a follower share one call to the leader.
func (s *Store) followerReadIndex(ctx context.Context) (uint64, int64, error) {
	return submitRead(ctx, s.remoteReads, s.closing)
}

// remoteReadLoop batches a follower's read-index requests: every request
// queued before a call to the leader is sent shares that call's answer.
// Requests arriving while a call is in flight wait for the next one, so the
// index the leader confirms is always taken after each request in the batch
// arrived — the same rule readLoop follows on the leader.
func (s *Store) remoteReadLoop() {
	defer s.wg.Done()
	batchReads(s.remoteReads, s.closing, func() (res readIndexResult) {
		addr, _ := s.raft.LeaderWithID()
		if addr == "" || s.raft.State() == raft.Leader {
			// Leadership moved since the requests were queued: let each
			// request's own loop pick the right path again.
			res.err = errNotReadyLeader
			return res
		}
		ctx, cancel := context.WithTimeout(context.Background(), remoteReadTimeout)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		res.index, res.nowMs, res.err = s.remoteReadIndex(ctx, string(addr))
		return res
	})
}

func (s *Store) remoteReadIndex(ctx context.Context, addr string) (uint64, int64, error) {
	payload, err := s.callLeader(ctx, addr, methodReadIndex, nil)
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
	if st == statusClockOffset {
		return 0, 0, fmt.Errorf("%w: %w: leader: %s", errNotReadyLeader, ErrClockOffset, msg)
	}
	if st != statusOK {
		return 0, 0, fmt.Errorf("%w: leader: %s", errNotReadyLeader, msg)
	}
	return idx, now, nil
}

// leaderReadIndex queues a request for readLoop and waits for its answer.
func (s *Store) leaderReadIndex(ctx context.Context) (uint64, int64, error) {
	if s.raft.State() != raft.Leader || s.readyTerm.Load() == 0 {
		if _, err := s.stampNow(); err != nil && s.raft.State() == raft.Leader {
			// Not ready because its barrier waits for the clock.
			return 0, 0, fmt.Errorf("%w: %w", errNotReadyLeader, err)
		}
		return 0, 0, errNotReadyLeader
	}
	return submitRead(ctx, s.reads, s.closing)
}

// readLoop confirms read indexes in batches (ReadIndex, Raft thesis §6.4): every
// request that arrived before a round starts shares that round's single
// leadership check, so verification cost follows round trips, not request rate.
func (s *Store) readLoop() {
	defer s.wg.Done()
	batchReads(s.reads, s.closing, func() (res readIndexResult) {
		res.index, res.nowMs, res.err = s.confirmReadIndex()
		return res
	})
}

// submitRead queues a read-index request on queue and waits for its answer
// or ctx. The answer channel is buffered, so the batching loop never blocks
// on a caller that gave up.
func submitRead(ctx context.Context, queue chan<- *readIndexRequest, closing <-chan struct{}) (uint64, int64, error) {
	req := &readIndexRequest{done: make(chan readIndexResult, 1)}
	select {
	case queue <- req:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-closing:
		return 0, 0, ErrShuttingDown
	}
	select {
	case res := <-req.done:
		return res.index, res.nowMs, res.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// batchReads serves queue until closing: it takes every request queued
// before a round starts, runs confirm once for all of them, and answers each
// with the result. Requests that arrive during a round wait for the next, so
// the index a round confirms is taken after every request in it arrived.
func batchReads(queue <-chan *readIndexRequest, closing <-chan struct{}, confirm func() readIndexResult) {
	batch := make([]*readIndexRequest, 0, 256)
	for {
		select {
		case <-closing:
			return
		case req := <-queue:
			batch = append(batch[:0], req)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case req := <-queue:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		res := confirm()
		for _, req := range batch {
			req.done <- res
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
	now, err := s.stampNow()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errNotReadyLeader, err)
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, fmt.Errorf("%w: leadership check failed: %v", errNotReadyLeader, err)
	}
	if s.raft.CurrentTerm() != term {
		return 0, 0, fmt.Errorf("%w: term changed during the leadership check", errNotReadyLeader)
	}
	return idx, now, nil
}
