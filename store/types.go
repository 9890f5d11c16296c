package store

import (
	"time"
)

// WriteOptions are the conditions and the idempotency key of a write. The zero
// value is an unconditional, non-idempotent write.
type WriteOptions struct {
	// IfMatch, when not nil, requires the key to be live at exactly this
	// version (else ErrVersionMismatch).
	IfMatch *uint64
	// IfAbsent requires the key to be missing or expired (else
	// ErrAlreadyExists). Put only; exclusive with IfMatch.
	IfAbsent bool
	// IdempotencyKey, when not empty, makes the write apply at most once within
	// the dedup window (fsm.IdempotencyWindowMs): a retry with the same key and
	// Fingerprint gets the original result, one with another Fingerprint gets
	// ErrIdempotencyKeyReused.
	IdempotencyKey string
	// IdempotencyScope names the caller (the HTTP API passes the API key's
	// name). Keys are remembered per scope, so two callers sending the same
	// IdempotencyKey neither collide nor see each other's results. It must
	// not contain a NUL byte.
	IdempotencyScope string
	// Fingerprint identifies the request (e.g. a SHA-256 of it).
	Fingerprint [32]byte
}

// IncrResult describes an acknowledged increment.
type IncrResult struct {
	Created   bool // the counter did not exist (or had expired) and started from 0
	Value     int64
	Version   uint64
	ExpiresAt time.Time
	Index     uint64 // the log index of the write
}

// DeletePrefixResult describes an acknowledged bulk delete.
type DeletePrefixResult struct {
	Deleted int    // live keys removed
	Index   uint64 // the log index of the write
}

// ReadOptions select how a read is served.
type ReadOptions struct {
	Level ReadLevel
	// MinIndex, when not 0, makes the read first wait until this node's state
	// machine has applied that log index (else ErrIndexNotReached at the deadline).
	MinIndex uint64
}

// ReadInfo describes the node state a read was served from.
type ReadInfo struct {
	// AppliedIndex is the node's applied index when the read was served.
	AppliedIndex uint64
	// Follower is true when this node was not the leader.
	Follower bool
	// LastContact is the time since this follower last heard from a leader.
	LastContact time.Duration
}

// ListRequest selects a page of keys.
type ListRequest struct {
	Prefix string
	After  string // return keys strictly after this one ("" = from the start)
	Limit  int    // 1..1000
	ReadOptions
}

// ListResult is one page of live keys in byte order.
type ListResult struct {
	Items []Item
	// More is true when further live keys with the prefix follow the page.
	More bool
}

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
	// Index is the log index of the write (for read-your-writes via MinIndex).
	// For an idempotent retry answered from the dedup table it is the retry's
	// index, which is at or after the original write's.
	Index uint64
}

// DeleteResult describes an acknowledged delete.
type DeleteResult struct {
	// Deleted is true when a live key was removed; deleting a missing or expired
	// key is not an error and reports false.
	Deleted bool
	// Index is the log index of the write.
	Index uint64
}

// QuotaStatus describes this node's data against its storage quotas, as its
// state machine has applied it.
type QuotaStatus struct {
	Keys      int64 // stored entries, expired ones not yet removed included
	MaxKeys   int64 // 0 = no limit
	DataBytes int64 // bytes of keys plus values of those entries
	MaxData   int64 // 0 = no limit
}

// Full reports whether writes that add a key (keys quota) or any bytes
// (data quota) are being refused.
func (q QuotaStatus) Full() bool {
	return (q.MaxKeys > 0 && q.Keys >= q.MaxKeys) || (q.MaxData > 0 && q.DataBytes >= q.MaxData)
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
	ClusterID    string // "" until the first leader has recorded one
	RaftLog      string // the raft log store this node runs: RaftLogBolt or RaftLogWAL
	Build        Build  // this node's version and formats
	// DiskFailure is the storage error that stopped this node (raft is shut
	// down, State is Shutdown), nil while its disk works.
	DiskFailure *DiskFailure
}
