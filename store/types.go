package store

import (
	"errors"
	"fmt"
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

	// ErrVersionMismatch: an If-Match condition failed inside the state machine
	// (the key is missing, expired or at another version). Nothing was written.
	// Returned wrapped in a *ConditionError carrying the current version.
	ErrVersionMismatch = errors.New("version mismatch")

	// ErrAlreadyExists: a create-only write found a live key. Nothing was
	// written. Returned wrapped in a *ConditionError.
	ErrAlreadyExists = errors.New("key already exists")

	// ErrNotAnInteger: incr found a live value that is not a JSON integer
	// within int64. Nothing was written.
	ErrNotAnInteger = errors.New("value is not a 64-bit integer")

	// ErrOverflow: incr would leave the int64 range. Nothing was written.
	ErrOverflow = errors.New("integer overflow")

	// ErrIdempotencyKeyReused: the idempotency key was used, within the
	// window, for a different request. Nothing was written.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused for a different request")

	// ErrQuotaExceeded: the write would add data beyond a storage quota
	// (Config.MaxKeys, Config.MaxDataBytes). Nothing was written. Deletes,
	// expiry changes and writes that do not grow the data still succeed;
	// retrying the same write fails the same way until space is freed or the
	// quota raised.
	ErrQuotaExceeded = errors.New("storage quota exceeded")

	// ErrIdempotencyTableFull: the write carries an idempotency key the
	// dedup table has not seen, and recording it would take the table past
	// its byte budget while every entry in it is still inside its window
	// (Config.IdempotencyMaxBytes). Nothing was written; retry later (entries
	// age out continuously) or send the write without a key.
	ErrIdempotencyTableFull = errors.New("idempotency table full")

	// ErrIndexNotReached: a read with MinIndex found this node's state machine
	// below that index when the deadline passed. Safe to retry.
	ErrIndexNotReached = errors.New("index not reached")

	// ErrClockOffset: the node that would have to decide the time (the
	// leader, for a write, an expiry or a linearizable read) has a clock that
	// does not agree with a majority of the voters within MaxClockOffset, and
	// no leadership change fixed that before the deadline; or a leadership
	// transfer named a voter whose clock is not known to be within the bound.
	// Nothing was written or changed. Safe to retry.
	ErrClockOffset = errors.New("clock offset beyond the bound")
)

// ConditionError is a failed precondition or counter check. It wraps
// ErrVersionMismatch, ErrAlreadyExists, ErrNotAnInteger or ErrOverflow.
type ConditionError struct {
	Err error
	// CurrentVersion is the key's live version at the time of the check; 0
	// when the key is missing or expired.
	CurrentVersion uint64
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("%v (current version %d)", e.Err, e.CurrentVersion)
}

func (e *ConditionError) Unwrap() error { return e.Err }

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
	Build        Build  // this node's version and formats
}
