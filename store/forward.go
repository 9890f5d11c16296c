package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// Forwarding: a node that does not lead sends writes, membership changes and
// read-index requests to the leader over the peer port (callLeader), and a
// leader that receives one runs it only while it leads (asLeader), so a
// request never travels between two followers.

// callLeader is s.rpc.Call, counted and timed as a forwarded request.
func (s *Store) callLeader(ctx context.Context, addr string, method uint8, req []byte) ([]byte, error) {
	start := time.Now()
	resp, err := s.rpc.Call(ctx, addr, method, req)
	kind, ok := methodNames[method]
	if !ok {
		kind = "other"
	}
	result := "ok"
	switch {
	case errors.Is(err, transport.ErrNotSent):
		result = "not_sent"
	case err != nil:
		result = "error"
	}
	s.metrics.forwarded.WithLabelValues(kind, result).Inc()
	s.metrics.forwardDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	return resp, err
}

// unsent classifies a failed call to the leader id: certainly not delivered
// (retry, here or at a new leader), or sent with no answer (the outcome is
// unknown).
func unsent(id string, err error) error {
	if errors.Is(err, transport.ErrNotSent) {
		return fmt.Errorf("%w: forward to leader %s: %v", errNotCommitted, id, err)
	}
	return fmt.Errorf("%w: forwarded to leader %s, no answer: %v", ErrOutcomeUnknown, id, err)
}

// forwardWrite sends req to the leader at addr and relays its answer. The
// leader checks req (it trusts no frame); a refusal comes back as the
// validation error, reason included.
func (s *Store) forwardWrite(ctx context.Context, addr, id string, req writeRequest) (writeResult, error) {
	payload, err := s.callLeader(ctx, addr, methodWrite, encodeWriteRequest(req))
	if err != nil {
		return writeResult{}, unsent(id, err)
	}
	res, w, err := decodeWriteResponse(payload)
	if err != nil {
		return writeResult{}, fmt.Errorf("%w: leader %s sent a malformed answer: %v", ErrOutcomeUnknown, id, err)
	}
	if err := w.err(); err != nil {
		return writeResult{}, err
	}
	return res, nil
}

// asLeader runs fn if this node leads, else answers "not committed" so the
// caller looks for the leader again (no forwarding loops).
func (s *Store) asLeader(fn func() error) error {
	if !s.IsLeader() {
		return fmt.Errorf("%w: %s is not the leader", errNotCommitted, s.cfg.NodeID)
	}
	return fn()
}

// forwardAdmin sends a membership request to the leader and relays its answer.
func (s *Store) forwardAdmin(ctx context.Context, addr, id string, method uint8, payload []byte) ([]byte, error) {
	resp, err := s.rpc.Call(ctx, addr, method, payload)
	if err != nil {
		return nil, unsent(id, err)
	}
	return decodeAdminResponse(resp)
}

// viaLeader runs an admin operation on the leader: local when this node
// leads, otherwise forwarded as method with payload (throughLeader).
func (s *Store) viaLeader(ctx context.Context, method uint8, payload []byte, local func(context.Context) ([]byte, error)) ([]byte, error) {
	return throughLeader(ctx, s, "membership change", local, func(ctx context.Context, addr, id string) ([]byte, error) {
		return s.forwardAdmin(ctx, addr, id, method, payload)
	})
}

// throughLeader runs an operation on the leader: local when this node leads,
// remote (a call to the leader addr, id) otherwise. Attempts that certainly
// changed nothing (errNotCommitted) are retried, waiting for a leader, until
// one does or ctx ends: then the error is ErrClockOffset if an attempt was
// refused for the leader's clock (that is the reason nothing was done), else
// ErrNoLeader naming what was not done. A store that closes after a leader
// was seen answers ErrShuttingDown.
func throughLeader[T any](ctx context.Context, s *Store, what string,
	local func(context.Context) (T, error), remote func(ctx context.Context, addr, id string) (T, error)) (T, error) {
	var zero T
	sawLeader := false
	var clockErr error
	for attempt := 0; ; attempt++ {
		select {
		case <-s.closing:
			return zero, ErrShuttingDown
		default:
		}
		if err := s.diskErr(); err != nil {
			return zero, err
		}
		var res T
		var err error
		addr, id := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			sawLeader = true
			res, err = local(ctx)
		case addr != "":
			sawLeader = true
			res, err = remote(ctx, string(addr), string(id))
		default:
			err = errNotCommitted
		}
		if !errors.Is(err, errNotCommitted) {
			return res, err
		}
		if errors.Is(err, ErrClockOffset) {
			clockErr = err
		}
		if werr := s.waitForLeader(ctx, attempt); werr != nil {
			switch {
			case sawLeader && errors.Is(werr, ErrShuttingDown):
				return zero, werr
			case clockErr != nil:
				return zero, fmt.Errorf("%w; nothing was changed", clockErr)
			case err != errNotCommitted:
				return zero, fmt.Errorf("%w: no leader accepted the %s before the deadline (%v)", ErrNoLeader, what, err)
			}
			return zero, fmt.Errorf("%w: no leader accepted the %s before the deadline", ErrNoLeader, what)
		}
	}
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
