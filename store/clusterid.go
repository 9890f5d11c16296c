package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// recordClusterID runs on a new leader after its barrier: if the cluster has
// no id yet (a new cluster, or one created before ids existed), it proposes a
// random one and waits for it to commit. The FSM keeps the first id it
// applies, so leaders racing to do this agree. It returns false when the
// node stopped leading first. The barrier has made every earlier entry
// applied here, so an id committed in an earlier term is seen and kept.
func (s *Store) recordClusterID(ctx context.Context) bool {
	if s.fsm.ClusterID() != "" {
		return true
	}
	id := newClusterID()
	for {
		// Stamped like every command: never from a clock out of bound.
		now, err := s.stampNow()
		var res interface{}
		if err == nil {
			res, err = s.applyLocal(ctx, fsm.Command{Op: fsm.OpClusterID, ClusterID: id, Now: now})
		}
		if err == nil {
			if r, ok := res.(fsm.ClusterIDResult); ok {
				s.log.Info("cluster id recorded", "cluster_id", r.ID)
			}
			return true
		}
		if ctx.Err() != nil || s.raft.State() != raft.Leader {
			return false
		}
		s.log.Warn("recording the cluster id failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// newClusterID is 128 random bits in hex.
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ClusterID is the cluster's id as this node has applied it ("" until the
// first leader has recorded one).
func (s *Store) ClusterID() string { return s.fsm.ClusterID() }
