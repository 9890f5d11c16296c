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

func forwardKind(method uint8) string {
	switch method {
	case methodWrite:
		return "write"
	case methodReadIndex:
		return "read_index"
	case methodReadAt:
		return "read"
	case methodReadIndexGet:
		return "read_index_get"
	case methodRestore:
		return "restore"
	}
	return "other"
}

// callLeader is s.rpc.Call, counted and timed as a forwarded request.
func (s *Store) callLeader(ctx context.Context, addr string, method uint8, req []byte) ([]byte, error) {
	start := time.Now()
	resp, err := s.rpc.Call(ctx, addr, method, req)
	kind := forwardKind(method)
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

// forwardWrite sends req to the leader at addr and relays its answer. The
// leader checks req (it trusts no frame); a refusal comes back as the
// validation error, reason included.
func (s *Store) forwardWrite(ctx context.Context, addr, id string, req writeRequest) (writeResult, error) {
	payload, err := s.callLeader(ctx, addr, methodWrite, encodeWriteRequest(req))
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
		if errors.Is(err, transport.ErrNotSent) {
			return nil, fmt.Errorf("%w: forward to leader %s: %v", errNotCommitted, id, err)
		}
		return nil, fmt.Errorf("%w: forwarded to leader %s, no answer: %v", ErrOutcomeUnknown, id, err)
	}
	body, err := decodeAdminResponse(resp)
	if err != nil && !errors.Is(err, errNotCommitted) {
		return nil, err
	}
	return body, err
}

// viaLeader runs an admin operation on the leader: local when this node
// leads, otherwise forwarded as method with payload. Like write, it retries
// attempts that certainly changed nothing until ctx ends.
func (s *Store) viaLeader(ctx context.Context, method uint8, payload []byte, local func(context.Context) ([]byte, error)) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		select {
		case <-s.closing:
			return nil, ErrShuttingDown
		default:
		}
		var resp []byte
		var err error
		addr, id := s.raft.LeaderWithID()
		switch {
		case s.raft.State() == raft.Leader:
			resp, err = local(ctx)
		case addr != "":
			resp, err = s.forwardAdmin(ctx, string(addr), string(id), method, payload)
		default:
			err = errNotCommitted
		}
		if !errors.Is(err, errNotCommitted) {
			return resp, err
		}
		if werr := s.waitForLeader(ctx, attempt); werr != nil {
			if errors.Is(werr, ErrShuttingDown) {
				return nil, werr
			}
			return nil, fmt.Errorf("%w: no leader accepted the membership change before the deadline (%v)", ErrNoLeader, err)
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
