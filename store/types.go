package store

import (
	"errors"
	"time"
)

// Sentinel errors returned by Store methods. Callers match them with errors.Is;
// every error a Store returns wraps exactly one of these, or is a context error.
var (
	// ErrNotFound: the key does not exist or has expired. Not an operational error.
	ErrNotFound = errors.New("key not found")

	// ErrNoLeader: no leader was known or reachable before the request's deadline.
	// Nothing was committed; the request is safe to retry.
	ErrNoLeader = errors.New("no leader available")

	// ErrOutcomeUnknown: a write was handed to raft (or to the leader) but its
	// commit could not be confirmed: leadership was lost after proposing, the
	// deadline passed while waiting for commit, or the forwarding connection broke
	// after the request was sent. The write may or may not be applied.
	ErrOutcomeUnknown = errors.New("write outcome unknown")

	// ErrShuttingDown: this node is stopping. Nothing was committed by this call.
	ErrShuttingDown = errors.New("node is shutting down")

	// ErrTimeout: a read could not be confirmed as linearizable before the
	// deadline (leader unreachable or not yet caught up). Safe to retry.
	ErrTimeout = errors.New("request deadline exceeded")
)

// Item is one live key as a read returns it.
type Item struct {
	Key string
	// Value is the stored JSON, compact, exactly as it was written.
	Value []byte
	// Version is the raft log index of the write that last changed the key.
	Version uint64
	// ExpiresAt is the absolute expiry; the zero Time means the key never expires.
	ExpiresAt time.Time
}

// SetResult describes an acknowledged (committed and applied) set.
type SetResult struct {
	// Created is true when the key did not exist (or had expired) before this write.
	Created   bool
	Version   uint64
	ExpiresAt time.Time // zero: no expiry
}

// DeleteResult describes an acknowledged delete.
type DeleteResult struct {
	// Deleted is true when a live key was removed; deleting a missing or expired
	// key is not an error and reports false.
	Deleted bool
}

// ReadLevel selects the consistency of a read.
type ReadLevel int

const (
	// Linearizable reads observe every write acknowledged before the read began.
	Linearizable ReadLevel = iota
	// Stale reads return this node's local state, which may lag the leader.
	Stale
)

// Peer is one voting server of the cluster.
type Peer struct {
	ID   string
	Addr string // peer (raft + forwarding RPC) address
}

// Status is a point-in-time view of this node, for operators.
type Status struct {
	NodeID       string
	State        string // Leader, Follower, Candidate, Shutdown
	LeaderID     string // empty when no leader is known
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64 // the state machine's own applied index
	Voters       []Peer
	Keys         int
}
