package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// clockGuardLoop keeps a leader whose clock is out of bound from staying
// leader: it hands leadership to a voter whose clock is within bound, as soon
// as a proposal or its own periodic check finds the clock out, and again
// each time raft elects this node while it still is. With no such voter it
// keeps leadership (every time-dependent proposal is refused meanwhile).
func (s *Store) clockGuardLoop() {
	defer s.wg.Done()
	t := time.NewTicker(clockGuardInterval)
	defer t.Stop()
	var lastNoTarget time.Time
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		case <-s.clock.kick:
		}
		if s.raft.State() != raft.Leader {
			continue
		}
		v := s.clockWithinBound()
		if v.ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.ElectionTimeout+clockPingTimeout+time.Second)
		s.measureClocks(ctx)
		target, ok := s.clockTransferTarget("")
		if !ok {
			if time.Since(lastNoTarget) > 10*time.Second {
				lastNoTarget = time.Now()
				s.log.Error("leader's clock is outside the bound and no voter's clock is known to be within it: keeping leadership but refusing every time-dependent proposal",
					"reason", v.String())
			}
			cancel()
			continue
		}
		s.log.Warn("leader's clock is outside the bound: transferring leadership", "to", string(target.ID), "reason", v.String())
		_, err := s.waitFuture(ctx, s.raft.LeadershipTransferToServer(target.ID, target.Address))
		cancel()
		if err != nil {
			s.log.Warn("clock-driven leadership transfer failed; will retry", "to", string(target.ID), "err", err)
		}
	}
}

// clockTransferTarget picks the voter to hand leadership to: want when it
// is not empty (ok only if its clock is within bound as this node measures
// it), otherwise the voter within bound that the leader's monitor last saw
// most caught up.
func (s *Store) clockTransferTarget(want string) (raft.Server, bool) {
	v := s.clock.view.Load()
	if v == nil {
		return raft.Server{}, false
	}
	est := v.estimates(s.cfg.Clock().UnixNano(), time.Now())
	type cand struct {
		srv     raft.Server
		applied uint64
	}
	var cands []cand
	for i, p := range v.peers {
		if !p.voter || (want != "" && p.id != want) || !v.peerWithin(i, est, s.cfg.MaxClockOffset) {
			continue
		}
		c := cand{srv: raft.Server{ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.addr), Suffrage: raft.Voter}}
		if st, ok := s.mon.get(p.id); ok {
			c.applied = st.applied
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return raft.Server{}, false
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].applied > cands[j].applied })
	return cands[0].srv, true
}

// leadershipTransfer starts a transfer to a voter whose clock is within
// bound, or, with none known, to whichever voter raft picks: used where
// leadership must go regardless (removing or stopping the leader), where a
// node out of bound would hand it on again.
func (s *Store) leadershipTransfer() raft.Future {
	if t, ok := s.clockTransferTarget(""); ok {
		return s.raft.LeadershipTransferToServer(t.ID, t.Address)
	}
	return s.raft.LeadershipTransfer()
}

// checkTransferTarget refuses to hand leadership to voter id unless this
// node's measurements show its clock within bound of a majority.
func (s *Store) checkTransferTarget(id string) error {
	if _, ok := s.clockTransferTarget(id); ok {
		return nil
	}
	v := s.clock.view.Load()
	if v != nil {
		est := v.estimates(s.cfg.Clock().UnixNano(), time.Now())
		for i, p := range v.peers {
			if p.id != id {
				continue
			}
			if !est[i].ok {
				return fmt.Errorf("%w: %s's clock has not been measured in the last %s; not handing it leadership", ErrClockOffset, id, clockSampleMaxAge)
			}
			return fmt.Errorf("%w: %s's clock is %s %s (error %s), and does not agree with a majority within the bound of %s; not handing it leadership",
				ErrClockOffset, id, abs(est[i].offset).Round(time.Millisecond), aheadBehind(est[i].offset), est[i].err.Round(time.Microsecond), s.cfg.MaxClockOffset)
		}
	}
	return fmt.Errorf("%w: %s's clock has not been measured; not handing it leadership", ErrClockOffset, id)
}
