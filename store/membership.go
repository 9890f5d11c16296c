package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// JoinRequest asks the cluster to add (or update) a server.
type JoinRequest struct {
	ID       string // raft server ID, unique and stable
	PeerAddr string // the address other nodes dial for raft and forwarding
	HTTPAddr string // the HTTP API address the node advertises (may be empty)
}

// JoinAction says what a join changed.
type JoinAction uint8

const (
	// JoinUnchanged: the server was already a member with this peer and HTTP address.
	JoinUnchanged JoinAction = 0
	// JoinAdded: the server was added as a non-voter; the leader promotes it
	// to voter once it has caught up.
	JoinAdded JoinAction = 1
	// JoinUpdated: the server was a member and its peer or HTTP address was replaced.
	JoinUpdated JoinAction = 2
)

func (a JoinAction) String() string {
	switch a {
	case JoinAdded:
		return "added"
	case JoinUpdated:
		return "updated"
	}
	return "unchanged"
}

// NodeInfo is one server of the cluster as GET /cluster/nodes shows it.
type NodeInfo struct {
	ID       string
	PeerAddr string
	HTTPAddr string // "" when the node never registered one
	Voter    bool   // false: a non-voter (catching up, or kept as such)
	Leader   bool
	// Probed is true when the leader has answered for this node: then
	// AppliedIndex and LastContact are its view, and Healthy is meaningful.
	Probed bool
	// AppliedIndex is the node's state machine applied index at LastContact.
	AppliedIndex uint64
	// LastContact is how long ago the leader last heard from the node's
	// node-info probe (0 for the leader itself).
	LastContact time.Duration
	// Healthy: the leader heard from the node within the health window.
	Healthy bool
	// Clock is the node's clock as the answering node measures it (its own
	// entry: offset 0 and its own verdict).
	Clock PeerClock
	// Build is the node's version and formats as it last reported them to
	// the leader (the answering node's own: always); zero when unknown.
	Build Build
}

// maxNodeField bounds each field of a JoinRequest.
const maxNodeField = 256

func (r JoinRequest) validate() error {
	check := func(name, v string, required bool) error {
		switch {
		case v == "" && required:
			return fmt.Errorf("%w: %s is required", ErrInvalidNode, name)
		case len(v) > maxNodeField:
			return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidNode, name, maxNodeField)
		case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("%w: %s contains spaces or control characters", ErrInvalidNode, name)
		}
		return nil
	}
	if err := check("id", r.ID, true); err != nil {
		return err
	}
	if err := check("peerAddr", r.PeerAddr, true); err != nil {
		return err
	}
	if !strings.Contains(r.PeerAddr, ":") {
		return fmt.Errorf("%w: peerAddr %q is not host:port", ErrInvalidNode, r.PeerAddr)
	}
	return check("httpAddr", r.HTTPAddr, false)
}

// Joining reports whether this node started with no raft state and
// Config.Join set: it did not bootstrap and waits to be added by a cluster.
func (s *Store) Joining() bool { return s.joining }

// PeerAddr is the peer address this node advertises.
func (s *Store) PeerAddr() string { return string(s.netTrans.LocalAddr()) }

// Join adds the server in req to the cluster as a non-voter, through the
// leader (forwarded when this node does not lead). Joining again with the same
// ID and addresses changes nothing; the same ID with another address replaces
// the address. A voter whose peer address changes is demoted to non-voter
// first (unless it is the leader itself or the last voter), so a node that
// comes back empty at a new address cannot weaken the quorum before it catches
// up; the leader promotes it again.
func (s *Store) Join(ctx context.Context, req JoinRequest) (JoinAction, error) {
	if err := req.validate(); err != nil {
		return 0, err
	}
	resp, err := s.viaLeader(ctx, methodJoin, encodeJoinRequest(req, false), func(ctx context.Context) ([]byte, error) {
		if err := s.verifyJoiner(ctx, req); err != nil { // peerauth.go
			return nil, err
		}
		a, err := s.joinAsLeader(ctx, req, false)
		return []byte{byte(a)}, err
	})
	if err != nil {
		return 0, err
	}
	if len(resp) != 1 || resp[0] > byte(JoinUpdated) {
		return 0, fmt.Errorf("%w: malformed join answer", ErrOutcomeUnknown)
	}
	return JoinAction(resp[0]), nil
}

// RemoveNode removes server id from the cluster through the leader. Removing
// the last voter fails with ErrLastVoter. When id is the leader, it first
// hands leadership to another voter, and the new leader removes it.
func (s *Store) RemoveNode(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: id is required", ErrInvalidNode)
	}
	_, err := s.viaLeader(ctx, methodRemove, encodeIDRequest(id), func(ctx context.Context) ([]byte, error) {
		return nil, s.removeAsLeader(ctx, id)
	})
	return err
}

// TransferLeader moves leadership to voter id, or to the most up-to-date
// other voter when id is empty, and returns the leader this node then sees
// (empty if none appeared before ctx ended). Naming the current leader is a
// no-op.
func (s *Store) TransferLeader(ctx context.Context, id string) (string, error) {
	_, old := s.raft.LeaderWithID()
	if _, err := s.viaLeader(ctx, methodTransfer, encodeIDRequest(id), func(ctx context.Context) ([]byte, error) {
		return nil, s.transferAsLeader(ctx, id)
	}); err != nil {
		return "", err
	}
	for {
		_, cur := s.raft.LeaderWithID()
		if cur != "" && (string(cur) == id || (id == "" && cur != old) || (id != "" && old == raft.ServerID(id))) {
			return string(cur), nil
		}
		select {
		case <-s.changed():
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return string(cur), nil
		case <-s.closing:
			return "", ErrShuttingDown
		}
	}
}

// Nodes lists every server in the configuration this node knows, with HTTP
// addresses from the replicated node table and, when the leader answers,
// the leader's view of each node's progress and health.
func (s *Store) Nodes(ctx context.Context) ([]NodeInfo, error) {
	cfg, err := s.configuration(ctx)
	if err != nil {
		return nil, err
	}
	_, leaderID := s.raft.LeaderWithID()
	addrs := s.fsm.NodeAddrs()
	stats := s.leaderView(ctx)
	clocks := s.clockInfo()
	out := make([]NodeInfo, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		id := string(srv.ID)
		n := NodeInfo{
			ID:       id,
			PeerAddr: string(srv.Address),
			HTTPAddr: addrs[id],
			Voter:    srv.Suffrage == raft.Voter,
			Leader:   srv.ID == leaderID && leaderID != "",
			Clock:    clocks[id],
		}
		if st, ok := stats[id]; ok {
			n.Probed, n.AppliedIndex, n.LastContact, n.Healthy = true, st.applied, st.lastContact, st.healthy
			n.Build = st.build
		}
		if id == s.cfg.NodeID {
			n.Build = s.localBuild()
		}
		out = append(out, n)
	}
	return out, nil
}

// configuration returns raft's latest configuration.
//
// Its index cannot serve as a configuration change's prevIndex: in
// hashicorp/raft v1.7.3 GetConfiguration's future reports index 0. Changes
// are made atomic on the leader with lockChanges instead.
func (s *Store) configuration(ctx context.Context) (raft.Configuration, error) {
	f := s.raft.GetConfiguration()
	if _, err := s.waitFuture(ctx, f); err != nil {
		if ctx.Err() != nil {
			return raft.Configuration{}, fmt.Errorf("%w: reading the configuration: %v", ErrTimeout, err)
		}
		return raft.Configuration{}, fmt.Errorf("%w: reading the configuration: %v", ErrShuttingDown, err)
	}
	return f.Configuration(), nil
}

// lockChanges serialises this leader's membership changes (join, remove,
// promotion): each reads the configuration, decides and waits for its change
// to commit while holding it, so a promotion decided on a stale view cannot
// undo a concurrent join or removal. Changes by an earlier leader have either
// committed (and are in the configuration read here) or failed.
func (s *Store) lockChanges(ctx context.Context) (unlock func(), err error) {
	select {
	case s.mon.changes <- struct{}{}:
		return func() { <-s.mon.changes }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for another membership change: %v", errNotCommitted, ctx.Err())
	}
}

// joinAsLeader applies a join on the leader. With registerOnly (a member
// registering its own HTTP address) an unknown ID is ErrNodeNotFound: a node
// that was removed must not add itself back.
func (s *Store) joinAsLeader(ctx context.Context, req JoinRequest, registerOnly bool) (JoinAction, error) {
	unlock, err := s.lockChanges(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	cfg, err := s.configuration(ctx)
	if err != nil {
		return 0, err
	}
	var cur *raft.Server
	voters := 0
	for i, srv := range cfg.Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
		if string(srv.ID) == req.ID {
			cur = &cfg.Servers[i]
		} else if string(srv.Address) == req.PeerAddr {
			return 0, fmt.Errorf("%w: %s is the peer address of node %s; remove it first", ErrNodeConflict, req.PeerAddr, srv.ID)
		}
	}
	action := JoinUnchanged
	id, addr := raft.ServerID(req.ID), raft.ServerAddress(req.PeerAddr)
	switch {
	case cur == nil && registerOnly:
		return 0, fmt.Errorf("%w: %s is not a member", ErrNodeNotFound, req.ID)
	case cur == nil:
		if err := s.changeConfig(ctx, s.raft.AddNonvoter(id, addr, 0, enqueueTimeout(ctx))); err != nil {
			return 0, err
		}
		s.log.Info("added non-voter", "id", req.ID, "peer", req.PeerAddr, "http", req.HTTPAddr)
		action = JoinAdded
	case cur.Address != addr:
		if cur.Suffrage == raft.Voter && id != raft.ServerID(s.cfg.NodeID) && voters > 1 {
			// Demote at the old address first; the promotion loop makes it a
			// voter again once it has caught up at the new one.
			if err := s.changeConfig(ctx, s.raft.DemoteVoter(id, 0, enqueueTimeout(ctx))); err != nil {
				return 0, err
			}
		}
		// AddNonvoter keeps a voter (the leader itself, or the last voter) a voter.
		if err := s.changeConfig(ctx, s.raft.AddNonvoter(id, addr, 0, enqueueTimeout(ctx))); err != nil {
			return 0, err
		}
		s.log.Info("replaced peer address", "id", req.ID, "old", string(cur.Address), "new", req.PeerAddr)
		action = JoinUpdated
	}
	if req.HTTPAddr != "" {
		if old, _ := s.fsm.NodeAddr(req.ID); old != req.HTTPAddr {
			if err := s.setNodeAddr(ctx, req.ID, req.HTTPAddr); err != nil {
				return 0, err
			}
			if action == JoinUnchanged {
				action = JoinUpdated
			}
		}
	}
	return action, nil
}

// setNodeAddr commits an OpNodeAddr command (addr "" forgets id).
func (s *Store) setNodeAddr(ctx context.Context, id, addr string) error {
	now, err := s.stampNow()
	if err != nil {
		return fmt.Errorf("%w: %w", errNotCommitted, err)
	}
	_, err = s.applyLocal(ctx, fsm.Command{Op: fsm.OpNodeAddr, NodeID: id, HTTPAddr: addr, Now: now})
	return err
}

// removeAsLeader applies a removal on the leader. When id is this node it
// transfers leadership and answers errNotCommitted, so the caller retries at
// the new leader, which removes this node.
func (s *Store) removeAsLeader(ctx context.Context, id string) error {
	unlock, err := s.lockChanges(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := s.configuration(ctx)
	if err != nil {
		return err
	}
	var target *raft.Server
	voters := 0
	for i, srv := range cfg.Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
		if string(srv.ID) == id {
			target = &cfg.Servers[i]
		}
	}
	switch {
	case target == nil:
		return fmt.Errorf("%w: %s", ErrNodeNotFound, id)
	case target.Suffrage == raft.Voter && voters == 1:
		return fmt.Errorf("%w: %s is the only voter", ErrLastVoter, id)
	case id == s.cfg.NodeID:
		s.log.Info("removing the leader: transferring leadership first", "id", id)
		if _, err := s.waitFuture(ctx, s.leadershipTransfer()); err != nil {
			return fmt.Errorf("%w: %v", ErrTransferFailed, err)
		}
		return fmt.Errorf("%w: leadership transferred before removing %s", errNotCommitted, id)
	}
	if err := s.changeConfig(ctx, s.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))); err != nil {
		return err
	}
	s.log.Info("removed server", "id", id, "peer", string(target.Address))
	if err := s.setNodeAddr(ctx, id, ""); err != nil {
		// Harmless: readers only show addresses of configured servers, and a
		// later join of the same ID overwrites the entry.
		s.log.Warn("could not forget the removed node's HTTP address", "id", id, "err", err)
	}
	return nil
}

// transferAsLeader hands leadership to voter id (any voter when id is "").
//
// The new leader will stamp time, so it must be a voter whose clock this
// leader measures within bound of a majority: naming any other is refused
// with ErrClockOffset, and with no id the pick is among those only.
func (s *Store) transferAsLeader(ctx context.Context, id string) error {
	var f raft.Future
	s.measureClocks(ctx)
	if id == "" {
		t, ok := s.clockTransferTarget("")
		if !ok {
			return fmt.Errorf("%w: no other voter's clock is known to be within bound of a majority; not transferring leadership", ErrClockOffset)
		}
		id = string(t.ID)
		f = s.raft.LeadershipTransferToServer(t.ID, t.Address)
	} else {
		cfg, err := s.configuration(ctx)
		if err != nil {
			return err
		}
		var target *raft.Server
		for i, srv := range cfg.Servers {
			if string(srv.ID) == id {
				target = &cfg.Servers[i]
			}
		}
		switch {
		case target == nil:
			return fmt.Errorf("%w: %s", ErrNodeNotFound, id)
		case target.Suffrage != raft.Voter:
			return fmt.Errorf("%w: %s", ErrNotVoter, id)
		case id == s.cfg.NodeID:
			return nil
		}
		if err := s.checkTransferTarget(id); err != nil {
			return err
		}
		f = s.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	if _, err := s.waitFuture(ctx, f); err != nil {
		return fmt.Errorf("%w: %v", ErrTransferFailed, err)
	}
	s.log.Info("leadership transferred", "to", id)
	return nil
}

// changeConfig waits for a configuration change and classifies its error
// like a write: not leader, a leadership transfer or an enqueue timeout mean
// it did not happen and may be retried; a lost leadership or a deadline
// leaves the outcome unknown.
func (s *Store) changeConfig(ctx context.Context, f raft.IndexFuture) error {
	_, err := s.waitFuture(ctx, f)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", errNotCommitted, err)
	default:
		return fmt.Errorf("%w: configuration change: %v", ErrOutcomeUnknown, err)
	}
}

// enqueueTimeout bounds how long raft may take to accept a configuration
// change: the rest of ctx's deadline (the future itself is waited on with ctx).
func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 10 * time.Second
}
