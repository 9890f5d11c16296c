package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// readIndexRequest asks readLoop (or on a follower remoteReadLoop) for a
// confirmed read index.
type readIndexRequest struct {
	// get, on a follower, names the key a GET will read: if the follower
	// has not applied the read index yet, the leader reads the key at the
	// read point and returns it with the index (readat.go).
	get *string
	// seen, on the leader, is its answer counter when the request queued
	// (readvouch.go): an echo numbered above it confirms the request.
	seen uint64
	done chan readIndexResult // buffered(1): the loop never blocks on it
}

type readIndexResult struct {
	readPoint
	err error
}

// Get returns the live entry for key. Linearizable reads observe every write
// acknowledged before Get was called; Stale reads return this node's state.
func (s *Store) Get(ctx context.Context, key string, level ReadLevel) (Item, error) {
	it, _, err := s.Read(ctx, key, ReadOptions{Level: level})
	return it, err
}

// Read is Get with read options, also describing the state it was served from.
func (s *Store) Read(ctx context.Context, key string, opts ReadOptions) (Item, ReadInfo, error) {
	var remote *readAtResult
	now, info, err := s.prepareRead(ctx, opts, &key, func(ctx context.Context, at readPoint) error {
		if at.got != nil {
			remote = at.got
			return nil
		}
		res, err := s.readAt(ctx, at, readAtRequest{key: key})
		if err == nil {
			remote = &res
		}
		return err
	})
	switch {
	case err != nil:
		return Item{}, info, err
	case remote != nil && len(remote.items) == 0:
		return Item{}, info, ErrNotFound
	case remote != nil:
		return remote.items[0], info, nil
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
	var remote *ListResult
	now, info, err := s.prepareRead(ctx, req.ReadOptions, nil, func(ctx context.Context, at readPoint) error {
		res, err := s.readAt(ctx, at, readAtRequest{list: true, key: req.Prefix, after: req.After, limit: req.Limit})
		if err != nil {
			return err
		}
		remote = &ListResult{Items: res.items, More: res.more}
		return nil
	})
	if err != nil {
		return ListResult{}, info, err
	}
	if remote != nil {
		return *remote, info, nil
	}
	entries, more := s.fsm.List(req.Prefix, req.After, req.Limit, now)
	res := ListResult{Items: make([]Item, len(entries)), More: more}
	for i, e := range entries {
		res.Items[i] = Item{Key: e.Key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}
	}
	return res, info, nil
}

// readPoint is a confirmed linearizable read: state applied up to index
// reflects every write acknowledged before the read began, and expiry is
// judged at nowMs, the leader's clock when it took the index. from is the
// peer address of the leader that confirmed it ("" when this node did).
type readPoint struct {
	index uint64
	nowMs int64
	from  string
	// got is the leader's answer to the GET the request named, read at
	// this read point, when the leader found this follower behind it.
	got *readAtResult
}

// remoteRead serves a read elsewhere at a confirmed read point: it returns
// nil once the read's result is in hand, an error to make the caller wait for
// its own state machine instead.
type remoteRead func(ctx context.Context, at readPoint) error

// prepareRead waits until this node may serve a read with opts and returns the
// clock at which to judge expiry: for MinIndex, until the local state machine
// applied it; for a linearizable read, until it applied a confirmed read index
// (then expiry is judged at the leader's clock); a stale read uses the local
// clock. Either way, never a time before the last applied command's.
//
// A follower whose state machine has not reached the read index does not wait
// for it when it need not (readat.go): a GET (get names its key) may come back
// with the leader's answer read at the read point, and otherwise, after
// followerReadGrace, remote (when not nil) asks the leader to serve the read at
// that point. Waiting would take until the leader's next AppendEntries carries
// the commit index, which without further writes is raft's CommitTimeout. If
// remote returns nil the read is done there, and the returned clock is not to
// be used.
func (s *Store) prepareRead(ctx context.Context, opts ReadOptions, get *string, remote remoteRead) (int64, ReadInfo, error) {
	// A node whose disk failed serves nothing, not even a stale read: its
	// state may lack entries it acknowledged to no one but could not store.
	if err := s.diskErr(); err != nil {
		return 0, s.readInfo(), err
	}
	if opts.MinIndex > 0 {
		if err := s.fsm.WaitApplied(ctx, opts.MinIndex); err != nil {
			return 0, s.readInfo(), fmt.Errorf("%w: index %d not applied before the deadline (applied %d)",
				ErrIndexNotReached, opts.MinIndex, s.fsm.AppliedIndex())
		}
	}
	now := s.nowMs()
	if opts.Level != Stale && !brokenReads {
		at, err := s.readIndex(ctx, get)
		if err != nil {
			return 0, s.readInfo(), err
		}
		if at.from != "" && remote != nil && s.fsm.AppliedIndex() < at.index {
			if at.got == nil && s.waitAppliedFor(ctx, at.index, followerReadGrace) {
				return max(at.nowMs, s.fsm.LastNow()), s.readInfo(), nil
			}
			if err := remote(ctx, at); err == nil {
				return 0, s.readInfo(), nil
			} else if ctx.Err() == nil {
				s.log.Debug("read at the leader failed; waiting for the local state machine", "index", at.index, "err", err)
			}
		}
		if err := s.fsm.WaitApplied(ctx, at.index); err != nil {
			return 0, s.readInfo(), fmt.Errorf("%w: waiting to apply index %d (applied %d)", ErrTimeout, at.index, s.fsm.AppliedIndex())
		}
		now = at.nowMs
	}
	// Command time never runs backwards (idempotency.go): an entry expired at
	// the last applied command's time stays hidden, whatever the clock says.
	now = max(now, s.fsm.LastNow())
	return now, s.readInfo(), nil
}

// waitAppliedFor reports whether the state machine reaches index within d.
func (s *Store) waitAppliedFor(ctx context.Context, index uint64, d time.Duration) bool {
	if s.fsm.AppliedIndex() >= index {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.fsm.WaitApplied(wctx, index) == nil
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

// readIndex returns a read point: an index such that state applied up to it
// reflects every write acknowledged before the call, and the leader's clock at
// that point. It asks the local read loop when this node leads, the leader
// otherwise, and retries until ctx ends.
func (s *Store) readIndex(ctx context.Context, get *string) (readPoint, error) {
	sawLeader := false
	var last error
	for attempt := 0; ; attempt++ {
		if err := s.diskErr(); err != nil {
			return readPoint{}, err
		}
		var at readPoint
		var err error
		addr, _ := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			sawLeader = true
			at.index, at.nowMs, err = s.leaderReadIndex(ctx)
		case addr != "":
			sawLeader = true
			at, err = s.followerReadIndex(ctx, get)
		default:
			err = errNotReadyLeader
		}
		if err == nil {
			return at, nil
		}
		last = err
		if werr := s.waitForLeader(ctx, attempt); werr != nil {
			if errors.Is(werr, ErrShuttingDown) {
				return readPoint{}, werr
			}
			if !sawLeader {
				return readPoint{}, fmt.Errorf("%w: no leader known before the deadline", ErrNoLeader)
			}
			if errors.Is(last, ErrClockOffset) {
				return readPoint{}, fmt.Errorf("could not confirm a read index before the deadline: %w", last)
			}
			return readPoint{}, fmt.Errorf("%w: could not confirm a read index with the leader: %v", ErrTimeout, last)
		}
	}
}

// remoteReadTimeout bounds one batch's read-index call to the leader; a
// request whose own deadline is longer retries in readIndex's loop.
const remoteReadTimeout = 3 * time.Second

// followerReadIndex queues a request for remoteReadLoop and waits for its
// answer: concurrent reads on a follower share one call to the leader.
func (s *Store) followerReadIndex(ctx context.Context, get *string) (readPoint, error) {
	return submitRead(ctx, s.remoteReads, s.closing, &readIndexRequest{get: get})
}

// remoteReadLoop batches a follower's read-index requests: every request
// queued before a call to the leader is sent shares that call's answer.
// Requests arriving while a call is in flight wait for the next one, so the
// index the leader confirms is always taken after each request in the batch
// arrived — the same rule readLoop follows on the leader.
func (s *Store) remoteReadLoop() {
	defer s.wg.Done()
	batchReads(s.remoteReads, s.closing, func(batch []*readIndexRequest) {
		answer := func(res readIndexResult) {
			for _, req := range batch {
				req.done <- res
			}
		}
		addr, _ := s.raft.LeaderWithID()
		if addr == "" || s.raft.State() == raft.Leader {
			// Leadership moved since the requests were queued: let each
			// request's own loop pick the right path again.
			answer(readIndexResult{err: errNotReadyLeader})
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, remoteReadTimeout)
		defer cancel()
		// This node's term, read after every request of the batch arrived:
		// the leader may confirm the index with it instead of a leadership
		// check (termVouch).
		var vouch termVouch
		if m := s.echo.got.Load(); m != nil {
			vouch.echo = *m // before the term: the echo must precede it
		}
		vouch.term, vouch.id = s.raft.CurrentTerm(), s.cfg.NodeID
		s.metrics.readBatch[readBatchFollower].Observe(float64(len(batch)))
		var keys []string
		seen := make(map[string]bool)
		for _, req := range batch {
			if req.get != nil && !seen[*req.get] {
				seen[*req.get] = true
				keys = append(keys, *req.get)
			}
		}
		if len(keys) > 0 {
			// One call confirms the index and, if this node is behind it,
			// brings the GETs' answers (readat.go). Should it fail (a
			// leader without the method, a refusal), the plain call below
			// still confirms the index.
			at, got, err := s.remoteReadIndexGet(ctx, string(addr), vouch, keys)
			if err == nil {
				for _, req := range batch {
					res := readIndexResult{readPoint: at}
					if req.get != nil && got != nil {
						res.got = got[*req.get]
					}
					req.done <- res
				}
				return
			}
			s.log.Debug("read index with GETs failed; asking for the index alone", "err", err)
		}
		var res readIndexResult
		res.index, res.nowMs, res.err = s.remoteReadIndex(ctx, string(addr), vouch)
		res.from = string(addr)
		answer(res)
	})
}

func (s *Store) remoteReadIndex(ctx context.Context, addr string, vouch termVouch) (uint64, int64, error) {
	payload, err := s.callLeader(ctx, addr, methodReadIndex, encodeReadIndexRequest(vouch))
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			return 0, 0, fmt.Errorf("%w: %v", errNotReadyLeader, err)
		}
		return 0, 0, err
	}
	idx, now, mark, w, err := decodeReadIndexAnswer(payload)
	if err != nil {
		return 0, 0, fmt.Errorf("store: malformed read index answer: %w", err)
	}
	s.gotMark(mark)
	if w.status == statusClockOffset {
		return 0, 0, fmt.Errorf("%w: %w: leader: %s", errNotReadyLeader, ErrClockOffset, w.msg)
	}
	if w.status != statusOK {
		return 0, 0, fmt.Errorf("%w: leader: %s", errNotReadyLeader, w.msg)
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
	at, err := submitRead(ctx, s.reads, s.closing, &readIndexRequest{seen: s.echo.seq.Load()})
	return at.index, at.nowMs, err
}

// readLoop confirms read indexes in batches (ReadIndex, Raft thesis §6.4): every
// request that arrived before a round starts shares that round's single
// leadership check, so verification cost follows round trips, not request rate.
func (s *Store) readLoop() {
	defer s.wg.Done()
	batchReads(s.reads, s.closing, func(batch []*readIndexRequest) {
		s.metrics.readBatch[readBatchLeader].Observe(float64(len(batch)))
		var seen uint64
		for _, req := range batch {
			seen = max(seen, req.seen)
		}
		var res readIndexResult
		res.index, res.nowMs, res.err = s.confirmReadIndex(seen)
		for _, req := range batch {
			req.done <- res
		}
	})
}

// verifyLeader runs raft's leadership check and waits for its answer, for
// the disk failure or for the store's close, whichever comes first.
//
// raft queues the check on a buffered channel that only its main loop
// reads, and the check's future, unlike the configuration future, is not
// told when raft shuts down: a check queued as raft stops (the leader loop
// leaving after a failed log write while watchDisk shuts raft down) is
// never answered, and readLoop, which waits for it, would keep Close
// waiting forever. bindToClose answers it at Close; the disk failure, which
// stops raft without closing the store, answers it here, so the reads in
// that batch learn at once that this node stopped.
func (s *Store) verifyLeader() error {
	f := s.raft.VerifyLeader()
	s.bindToClose(f)
	done := make(chan error, 1)
	s.spawn(func() { done <- f.Error() })
	select {
	case err := <-done:
		return err
	case <-s.disk.failedCh:
		return s.diskErr()
	}
}

// submitRead queues req on queue and waits for its answer
// or ctx. The answer channel is buffered, so the batching loop never blocks
// on a caller that gave up.
func submitRead(ctx context.Context, queue chan<- *readIndexRequest, closing <-chan struct{}, req *readIndexRequest) (readPoint, error) {
	req.done = make(chan readIndexResult, 1)
	select {
	case queue <- req:
	case <-ctx.Done():
		return readPoint{}, ctx.Err()
	case <-closing:
		return readPoint{}, ErrShuttingDown
	}
	select {
	case res := <-req.done:
		return res.readPoint, res.err
	case <-ctx.Done():
		return readPoint{}, ctx.Err()
	}
}

// batchReads serves queue until closing: it takes every request queued
// before a round starts and runs confirm once for all of them, which answers
// each. Requests that arrive during a round wait for the next, so the index a
// round confirms is taken after every request in it arrived.
func batchReads(queue <-chan *readIndexRequest, closing <-chan struct{}, confirm func(batch []*readIndexRequest)) {
	batch := make([]*readIndexRequest, 0, 256)
	for {
		select {
		case <-closing:
			return
		case req := <-queue:
			batch = append(batch[:0], req)
		}
		// Let the goroutines already runnable (requests about to queue) run
		// first, so a round carries them instead of the next one.
		runtime.Gosched()
	drain:
		for len(batch) < cap(batch) {
			select {
			case req := <-queue:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		confirm(batch)
	}
}

// confirmReadIndex takes the commit index and proves this node was still the
// leader after taking it, by a follower's echo of an answer numbered above
// seen (readvouch.go) or else a leadership check. The term's barrier must have
// committed first, so the commit index covers every entry acknowledged by
// earlier leaders.
func (s *Store) confirmReadIndex(seen uint64) (uint64, int64, error) {
	term := s.raft.CurrentTerm()
	if s.raft.State() != raft.Leader || s.readyTerm.Load() != term {
		return 0, 0, errNotReadyLeader
	}
	idx := s.raft.CommitIndex()
	// Never before the last applied command's time (idempotency.go), so a
	// read served anywhere at this point cannot see a key already expired in
	// command time.
	now, err := s.commandNow()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errNotReadyLeader, err)
	}
	if s.echoConfirms(term, seen) && s.raft.CurrentTerm() == term && s.raft.State() == raft.Leader {
		s.metrics.readConfirmed[confirmedByEcho].Inc()
		return idx, now, nil
	}
	s.metrics.readConfirmed[confirmedByCheck].Inc()
	if err := s.verifyLeader(); err != nil {
		return 0, 0, fmt.Errorf("%w: leadership check failed: %v", errNotReadyLeader, err)
	}
	if s.raft.CurrentTerm() != term {
		return 0, 0, fmt.Errorf("%w: term changed during the leadership check", errNotReadyLeader)
	}
	return idx, now, nil
}
