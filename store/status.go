package store

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// Status reports this node's view of the cluster. It reads local state only.
func (s *Store) Status(ctx context.Context) (Status, error) {
	addr, id := s.raft.LeaderWithID()
	st := Status{
		NodeID:       s.cfg.NodeID,
		State:        s.raft.State().String(),
		LeaderID:     string(id),
		LeaderAddr:   string(addr),
		Term:         s.raft.CurrentTerm(),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.fsm.AppliedIndex(),
		Keys:         s.fsm.Len(),
		ClusterID:    s.fsm.ClusterID(),
		RaftLog:      s.logStore.name,
		Build:        s.localBuild(),
		DiskFailure:  s.DiskFailure(),
	}
	if s.raftStoppedByDisk() {
		st.State = raft.Shutdown.String() // see diskGuard.stoppedCh
	}
	f := s.raft.GetConfiguration()
	if _, err := s.waitFuture(ctx, f); err != nil {
		return Status{}, fmt.Errorf("store: read configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			st.Voters = append(st.Voters, Peer{ID: string(srv.ID), Addr: string(srv.Address)})
		}
	}
	return st, nil
}

// IsLeader reports whether this node currently believes it leads.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// StateHash is a digest of this node's applied state; equal on converged replicas.
func (s *Store) StateHash() string { return s.fsm.Hash() }

// DataHash is a digest of the data a backup carries (entries and the
// idempotency table), without cluster metadata such as node addresses: a
// cluster restored from a backup has the DataHash of its source.
func (s *Store) DataHash() string { return s.fsm.DataHash() }

// AppliedIndex is the index of the last log entry this node's state machine applied.
func (s *Store) AppliedIndex() uint64 { return s.fsm.AppliedIndex() }
