package store

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// expireLoop runs on the leader after its barrier: it proposes conditional
// expire commands for entries whose absolute expiry has passed on the leader's
// clock. Reads already hide such entries; this reclaims their memory. The FSM
// deletes an item only if its revision is unchanged and it has expired at the
// command's Now, so a key re-set meanwhile, or a proposal from a deposed leader,
// is harmless.
//
// Removal is paced over ExpireBudget (expirePlan): the loop sizes each
// command so that the due backlog is gone about when the earliest due entry
// has been due for the budget, one command per commit, so a mass expiry
// puts a little expiry work into every commit for a while instead of a lot
// into a few (client writes committed with it wait for its apply on every
// node). A handful of due keys still goes in one command at once. Only when
// one ExpireBatch command per commit is not enough, or the budget is spent,
// does it keep several commands in flight (at most ExpirePipeline): it
// proposes the next batch without waiting for the previous commit, reading
// the expiry index after the last item it proposed (an FSM cursor), so no
// item is proposed twice while its removal is pending. When nothing is in
// flight the cursor is dropped and the next scan starts at the beginning of
// the index, so an item whose command failed is found again. Measurements:
// store/DESIGN.md, Expiry.
func (s *Store) expireLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	// sleep waits d or until ctx ends; false when it ended. (Since Go 1.23,
	// Reset discards a tick nobody received.)
	sleep := func(d time.Duration) bool {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	var (
		inflight      []pendingExpire // oldest first; raft applies them in this order
		inflightItems int
		cursor        fsm.ExpiryCursor
		// commit is a running estimate of an expire command's time from
		// proposal to apply: the pace's unit.
		commit = s.cfg.ExpireInterval / 4
	)
	for {
		for {
			now, err := s.commandNow()
			if err != nil {
				break // no expirations on a clock out of bound; the guard acts
			}
			depth, chunk := s.expireNext(now, inflightItems, commit)
			if len(inflight) >= depth {
				break
			}
			items, next := s.fsm.ExpiredItemsAfter(now, cursor, chunk)
			if len(items) == 0 {
				break
			}
			cursor = next
			s.metrics.expirationsProposed.Add(float64(len(items)))
			cmd := fsm.Command{Op: fsm.OpExpire, Now: now, Items: items}
			inflight = append(inflight, pendingExpire{
				future: s.raft.Apply(cmd.Encode(), time.Second),
				start:  time.Now(),
				items:  len(items),
			})
			inflightItems += len(items)
		}
		if len(inflight) == 0 {
			cursor = fsm.ExpiryCursor{}
			if !sleep(s.nextExpiryWait()) {
				return
			}
			continue
		}

		p := inflight[0]
		inflight = inflight[1:]
		_, err := s.waitFuture(ctx, p.future)
		inflightItems -= p.items
		took := time.Since(p.start)
		s.metrics.proposed(fsm.OpExpire, took, err)
		if err == nil {
			commit = (3*commit + took) / 4
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Rare (lost leadership, raft shutting down, enqueue timeout): let the
		// rest settle, then rescan from the start after a pause, so a
		// persistent failure does not spin.
		s.log.Warn("expire proposal failed; will retry", "items", p.items, "err", err)
		for _, q := range inflight {
			_, qerr := s.waitFuture(ctx, q.future)
			s.metrics.proposed(fsm.OpExpire, time.Since(q.start), qerr)
		}
		inflight, inflightItems = inflight[:0], 0
		cursor = fsm.ExpiryCursor{}
		if !sleep(s.cfg.ExpireInterval) {
			return
		}
	}
}

// pendingExpire is an expire command proposed and not yet waited for.
type pendingExpire struct {
	future raft.ApplyFuture
	start  time.Time
	items  int
}

// expireNext returns how many expire commands may be in flight now and how
// many keys the next one takes, from the state machine's due backlog (less
// the inflight items already proposed) and the time left until the earliest
// due entry has been due for ExpireBudget.
func (s *Store) expireNext(now int64, inflight int, commit time.Duration) (depth, chunk int) {
	first, ok := s.fsm.NextExpiry()
	if !ok || first > now {
		return 1, s.cfg.ExpireMinChunk
	}
	due := max(s.fsm.ExpiredCount(now)-inflight, 0)
	left := time.Duration(first-now)*time.Millisecond + s.cfg.ExpireBudget
	return expirePlan(due, left, commit, s.cfg.ExpireBatch, s.cfg.ExpireMinChunk, s.cfg.ExpirePipeline)
}

// expirePlan spreads due removals over left, one round of commands per
// commit: perRound = due / (left / commit) keys, at least minChunk (a few
// due keys go at once), in as few commands of at most batch keys as carry
// it, at most pipeline of them. With no time left it is pipeline commands
// of batch keys: the budget is spent, remove as fast as possible.
func expirePlan(due int, left, commit time.Duration, batch, minChunk, pipeline int) (depth, chunk int) {
	if left <= 0 {
		return pipeline, batch
	}
	rounds := max(int64(left/max(commit, time.Millisecond)), 1)
	perRound := max(int((int64(due)+rounds-1)/rounds), minChunk)
	depth = min(max((perRound+batch-1)/batch, 1), pipeline)
	chunk = min((perRound+depth-1)/depth, batch)
	return depth, chunk
}

// nextExpiryWait is how long the loop may sleep: until the next known expiry,
// at most ExpireInterval (keys set meanwhile may expire sooner).
func (s *Store) nextExpiryWait() time.Duration {
	wait := s.cfg.ExpireInterval
	if next, ok := s.fsm.NextExpiry(); ok {
		if d := time.Duration(next-s.commandClock()+1) * time.Millisecond; d < wait {
			wait = max(d, 0)
		}
	}
	return wait
}
