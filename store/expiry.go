package store

import (
	"context"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// expireLoop runs on the leader after its barrier: it proposes conditional
// expire commands for entries whose absolute expiry has passed on the leader's
// clock. Reads already hide such entries; this reclaims their memory. The FSM
// deletes an item only if its revision is unchanged and it has expired at the
// command's Now, so a key re-set meanwhile, or a proposal from a deposed leader,
// is harmless.
func (s *Store) expireLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := s.nowMs()
		items := s.fsm.ExpiredItems(now, s.cfg.ExpireBatch)
		if len(items) > 0 {
			s.metrics.expirationsProposed.Add(float64(len(items)))
			_, err := s.applyLocal(ctx, fsm.Command{Op: fsm.OpExpire, Now: now, Items: items})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("expire proposal failed; will retry", "items", len(items), "err", err)
			} else if len(items) == s.cfg.ExpireBatch {
				timer.Reset(0) // more may be due: continue at once
				continue
			}
		}
		timer.Reset(s.nextExpiryWait())
	}
}

// nextExpiryWait is how long the loop may sleep: until the next known expiry,
// at most ExpireInterval (keys set meanwhile may expire sooner).
func (s *Store) nextExpiryWait() time.Duration {
	wait := s.cfg.ExpireInterval
	if next, ok := s.fsm.NextExpiry(); ok {
		if d := time.Duration(next-s.nowMs()+1) * time.Millisecond; d < wait {
			wait = max(d, 0)
		}
	}
	return wait
}
