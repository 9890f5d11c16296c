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
// Normally one command of at most ExpireBatch items is in flight, as few
// expiry work as possible queued ahead of client writes. When the loop falls
// behind (the earliest entry still in the index has been due for longer than
// ExpireCatchUp, e.g. after a mass expiry on a busy cluster), it keeps up to
// ExpirePipeline commands in flight: it proposes the next batch without
// waiting for the previous one's commit, reading the expiry index after the
// last item it proposed (an FSM cursor), so no item is proposed twice while
// its removal is pending. When nothing is in flight the cursor is dropped and
// the next scan starts at the beginning of the index, so an item whose command
// failed is found again. Measurements: store/DESIGN.md, Expiry.
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
		inflight []pendingExpire // oldest first; raft applies them in this order
		cursor   fsm.ExpiryCursor
	)
	for {
		for len(inflight) < s.expireDepth() {
			now, err := s.commandNow()
			if err != nil {
				break // no expirations on a clock out of bound; the guard acts
			}
			items, next := s.fsm.ExpiredItemsAfter(now, cursor, s.cfg.ExpireBatch)
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
		s.metrics.proposed(fsm.OpExpire, time.Since(p.start), err)
		if err == nil {
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
		inflight = inflight[:0]
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

// expireDepth is how many expire commands the loop may have in flight now: 1,
// or ExpirePipeline while the earliest entry in the expiry index (removal
// pending or not) has been due for longer than ExpireCatchUp.
func (s *Store) expireDepth() int {
	if next, ok := s.fsm.NextExpiry(); ok && time.Duration(s.commandClock()-next)*time.Millisecond > s.cfg.ExpireCatchUp {
		return s.cfg.ExpirePipeline
	}
	return 1
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
