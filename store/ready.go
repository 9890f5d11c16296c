package store

import (
	"context"
	"fmt"
)

// Ready reports whether this node can serve a linearizable read now: it knows
// a leader, the leader confirms a read index, and this node's state machine
// reaches that index before ctx ends (the lag bound is the caller's
// deadline). It returns nil when ready, otherwise an error wrapping
// ErrNoLeader, ErrShuttingDown or ErrTimeout (with ErrCatchingUp when only
// this node's apply lags) that says why. A node whose clock its samples
// prove out of bound of a majority of the voters (clock.go) is not ready
// either (ErrClockOffset), whoever leads, nor is a node whose disk failed
// (ErrDiskFailed, diskguard.go). Load balancers and Kubernetes
// readiness probes call it through GET /readyz.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.diskErr(); err != nil {
		return err
	}
	if v := s.clockWithinBound(); v.certain() {
		return fmt.Errorf("%w: %s (bound %s)", ErrClockOffset, v, s.cfg.MaxClockOffset)
	}
	at, err := s.readIndex(ctx, nil)
	if err != nil {
		return err
	}
	if err := s.fsm.WaitApplied(ctx, at.index); err != nil {
		return fmt.Errorf("%w: %w: applied index %d, the leader's read index %d", ErrTimeout, ErrCatchingUp, s.fsm.AppliedIndex(), at.index)
	}
	return nil
}
