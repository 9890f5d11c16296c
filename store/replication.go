package store

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The leader's own view of replication, for promotion.
//
// hashicorp/raft keeps each follower's match index to itself (no API, no
// observation carries it). But every AppendEntries and InstallSnapshot the
// leader sends goes through the raft.Transport it was given, so the store
// hands raft a thin wrapper (observedTransport) that, on each successful
// answer, records what raft itself concludes from it: the follower's log
// matches the leader's up to the request's last entry (or its PrevLogEntry
// when it carried none), or up to the snapshot's last index. That is the
// match index as the leader's raft sees it, with the term and the address
// the request went to and when it succeeded.
//
// Promotion of a non-voter is decided from this view alone: never from the
// applied index a node reports about itself over the node-info RPC, which
// anyone able to answer at that address could invent.

// replicaState is the leader's view of one server's log.
type replicaState struct {
	addr  raft.ServerAddress
	term  uint64    // the leader's term the requests were sent in
	match uint64    // highest index known to match the leader's log in term
	at    time.Time // last successful request
}

// replicationView collects replicaStates; safe for concurrent use (raft
// replicates to each follower from its own goroutine).
type replicationView struct {
	mu    sync.Mutex
	peers map[raft.ServerID]replicaState
}

func newReplicationView() *replicationView {
	return &replicationView{peers: map[raft.ServerID]replicaState{}}
}

// record notes a successful request to id at addr in term that established
// the follower's log up to match. A new term or address starts afresh.
func (v *replicationView) record(id raft.ServerID, addr raft.ServerAddress, term, match uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur, ok := v.peers[id]
	if !ok || cur.term != term || cur.addr != addr {
		cur = replicaState{addr: addr, term: term}
	}
	cur.match = max(cur.match, match)
	cur.at = time.Now()
	v.peers[id] = cur
}

func (v *replicationView) get(id raft.ServerID) (replicaState, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.peers[id]
	return st, ok
}

// observedTransport is raft's NetworkTransport with replication recorded in
// view. Pipelined replication is refused so that every AppendEntries goes
// through AppendEntries (the store runs raft with MaxRPCsInFlight 1, which
// refuses it anyway); raft then replicates synchronously, as configured.
type observedTransport struct {
	*raft.NetworkTransport
	view *replicationView
}

func (t observedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil && resp.Success && resp.Term == args.Term {
		match := args.PrevLogEntry
		if n := len(args.Entries); n > 0 {
			match = args.Entries[n-1].Index
		}
		t.view.record(id, target, args.Term, match)
	}
	return err
}

func (t observedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t observedTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	if err == nil && resp.Success && resp.Term == args.Term {
		t.view.record(id, target, args.Term, args.LastLogIndex)
	}
	return err
}
