package store

import (
	"errors"
	"fmt"
)

// The store's errors, all in this file. Exported sentinels are the contract
// with callers (httpapi maps each to a status code and a stable JSON code);
// the unexported ones mark internal retry decisions and never leave the
// package unwrapped. The peer RPC codec (rpc.go) carries them between
// nodes by number.

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

	// ErrDiskFailed: this node's raft log or stable store returned an error
	// (an I/O error, a failed fsync, a checksum mismatch), so the node
	// stopped taking part in raft and serves nothing until it is restarted
	// (Store.DiskFailure says what failed). Nothing was read or written by
	// this call; the rest of the cluster keeps serving, so retry at another
	// node.
	ErrDiskFailed = errors.New("disk failed")
)

// Membership errors. Like the sentinels above, every membership error a
// Store returns wraps one of these, a sentinel above, or a context error.
var (
	// ErrNodeNotFound: no server with this ID is in the cluster configuration.
	ErrNodeNotFound = errors.New("node not found")

	// ErrLastVoter: removing this server would leave the cluster without a
	// voter. Nothing was changed.
	ErrLastVoter = errors.New("cannot remove the last voter")

	// ErrNodeConflict: the join names a peer address that belongs to another
	// server ID. Remove that server first. Nothing was changed.
	ErrNodeConflict = errors.New("peer address belongs to another node")

	// ErrNotVoter: leadership can only move to a voter.
	ErrNotVoter = errors.New("node is not a voter")

	// ErrTransferFailed: the leader could not hand leadership over (no other
	// voter caught up, or the target did not win in time). Safe to retry.
	ErrTransferFailed = errors.New("leadership transfer failed")

	// ErrInvalidNode: a join request with a missing or malformed field.
	ErrInvalidNode = errors.New("invalid node")
)

// Validation errors: a write that breaks a rule of validate.go. Nothing was written.
// Every one is returned wrapped in an *InvalidError whose Reason says which
// rule, in words fit for a client.
var (
	ErrInvalidKey            = errors.New("invalid key")
	ErrInvalidPrefix         = errors.New("invalid prefix")
	ErrInvalidValue          = errors.New("invalid value")
	ErrValueTooLarge         = errors.New("value too large")
	ErrInvalidTTL            = errors.New("invalid ttl")
	ErrInvalidIdempotencyKey = errors.New("invalid idempotency key")
	// ErrInvalidWrite: a combination no API request produces (an unknown op,
	// a condition the op does not take, keepTtl with a TTL, ...).
	ErrInvalidWrite = errors.New("invalid write")
)

// ErrPeerUnauthenticated: a request that changes the cluster or its data
// (a forwarded write or restore step, a join, register, removal or
// leadership transfer) arrived over a peer connection that is not
// authenticated as a member, and the node does not allow that
// (Config.AllowUnauthenticatedPeers). Nothing was changed.
var ErrPeerUnauthenticated = errors.New("peer connection not authenticated")

// ErrCatchingUp: the leader confirmed a read index but this node's state
// machine had not applied it before the deadline. It is always wrapped
// together with ErrTimeout.
var ErrCatchingUp = errors.New("this node is catching up with the leader")

// ErrRestoreInterrupted: an online restore stopped before its commit (leader
// change, another restore started, the deadline passed). The dataset is
// unchanged; the restore may be sent again.
var ErrRestoreInterrupted = errors.New("restore interrupted; the dataset is unchanged")

// ErrClusterMismatch: the backup was taken from another cluster, or carries no
// cluster id (a file written before backups named their cluster), and the
// restore was not forced. Nothing was changed.
var ErrClusterMismatch = errors.New("backup is from another cluster")

// ErrRestoreInProgress: another online restore is running in the cluster (or
// on this node); one runs at a time. Nothing was changed.
var ErrRestoreInProgress = errors.New("another restore is in progress")

// ErrBadBackup: the input is not an intact quorumkv backup (wrong format,
// truncated, checksum mismatch). Nothing was changed.
var ErrBadBackup = errors.New("invalid backup")

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

// InvalidError is a broken write rule: Err is one of the validation
// sentinels, Reason one sentence saying what is wrong.
type InvalidError struct {
	Err    error
	Reason string
}

func (e *InvalidError) Error() string { return e.Err.Error() + ": " + e.Reason }
func (e *InvalidError) Unwrap() error { return e.Err }

// errNotCommitted marks an attempt that certainly did not commit (this node was
// not the leader, or the command was never enqueued): the caller may retry it,
// here or at the new leader.
var errNotCommitted = errors.New("not committed")

// errNotReadyLeader: this node is not (yet) a leader that may serve reads: it is
// a follower, or a new leader whose barrier has not committed in its term.
var errNotReadyLeader = errors.New("not a ready leader")
