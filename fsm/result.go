package fsm

// Apply and ApplyBatch return exactly one of these per LogCommand, as a value
// (never a pointer). Business outcomes are results, not errors or panics: the
// only panic is a committed entry that cannot be decoded.

// Status is the business outcome of a client write. A write whose Status is not
// StatusOK changed nothing (except that the dedup table remembers its result
// when it carried an idempotency key).
type Status uint8

const (
	StatusOK Status = iota
	// StatusVersionMismatch: CondIfMatch and the key is missing, expired or at
	// another revision. Current holds the live revision (0 when absent).
	StatusVersionMismatch
	// StatusAlreadyExists: CondIfAbsent and the key is live. Current holds its revision.
	StatusAlreadyExists
	// StatusNotFound: touch of a missing or expired key.
	StatusNotFound
	// StatusNotAnInteger: incr of a live value that is not JSON integer text
	// within int64.
	StatusNotAnInteger
	// StatusOverflow: incr whose result does not fit in int64.
	StatusOverflow
	// StatusIdempotencyKeyReused: the command's idempotency key is recorded
	// with a different fingerprint, within the window. Nothing was applied.
	StatusIdempotencyKeyReused
	// StatusIdempotencyTableFull is never produced by Apply. It is the
	// proposer's answer to a new idempotent write it did not propose because
	// recording it would take the dedup table past the proposer's byte budget
	// while every entry is still inside its window (see idempotency.go).
	// Nothing was applied; the write may be retried.
	StatusIdempotencyTableFull
	// StatusTxnCheckFailed: a transaction check did not hold
	// (TxnResult.FailedChecks). Nothing was applied.
	StatusTxnCheckFailed
	// StatusTxnOpFailed: a transaction operation cannot apply
	// (TxnResult.FailedOp and OpStatus). Nothing was applied.
	StatusTxnOpFailed
	// StatusTxnReadTooLarge: a transaction's get operations would return
	// more than its ReadBudget bytes of values (an OpStatus only).
	StatusTxnReadTooLarge
)

// String returns the snake_case name of s.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusVersionMismatch:
		return "version_mismatch"
	case StatusAlreadyExists:
		return "already_exists"
	case StatusNotFound:
		return "not_found"
	case StatusNotAnInteger:
		return "not_an_integer"
	case StatusOverflow:
		return "overflow"
	case StatusIdempotencyKeyReused:
		return "idempotency_key_reused"
	case StatusIdempotencyTableFull:
		return "idempotency_table_full"
	case StatusTxnCheckFailed:
		return "txn_check_failed"
	case StatusTxnOpFailed:
		return "txn_op_failed"
	case StatusTxnReadTooLarge:
		return "txn_read_too_large"
	}
	return "status(?)"
}

// SetResult is the outcome of OpSet and OpTouch.
type SetResult struct {
	Status Status
	// Created: no live entry existed at cmd.Now (missing or expired counts as created).
	Created bool
	// Revision is the new revision of the key: the log index of this command
	// (0 when Status is not OK).
	Revision uint64
	// ExpiresAt is the stored expiry (0 = never).
	ExpiresAt int64
	// Current is the key's live revision when a condition failed (0 = absent).
	Current uint64
}

// DeleteResult is the outcome of OpDelete.
type DeleteResult struct {
	Status Status
	// Deleted: a live entry (at cmd.Now) was removed. A present-but-expired entry
	// is physically removed too but Deleted is false.
	Deleted bool
	// Revision is the log index of this delete command (not the revision of the
	// removed entry); it is set whether or not anything was deleted, and 0 when
	// Status is not OK.
	Revision uint64
	// Current is the key's live revision when a condition failed (0 = absent).
	Current uint64
}

// IncrResult is the outcome of OpIncr.
type IncrResult struct {
	Status Status
	// Created: the key was missing or expired and now holds By.
	Created bool
	// Value is the new integer value.
	Value int64
	// Revision is the new revision (the log index of this command); 0 when
	// Status is not OK.
	Revision  uint64
	ExpiresAt int64
	// Current is the key's live revision when a condition failed or the value
	// is not an integer (0 = absent).
	Current uint64
}

// DeletePrefixResult is the outcome of OpDeletePrefix and of one
// OpDeletePrefixChunk.
type DeletePrefixResult struct {
	Status Status
	// Deleted counts the live entries removed (expired ones are removed too
	// but not counted). A result answered from the dedup table holds the
	// running total of the bulk delete it recorded.
	Deleted int
	// Revision is the log index of this command; 0 when Status is not OK. A
	// result answered from the dedup table holds its first chunk's index,
	// which is the bulk delete's Bound.
	Revision uint64

	// Chunk results only (not recorded in the dedup table). Bound is the
	// bulk delete's revision bound, for the next chunk. More: entries may
	// remain, propose another chunk resuming after Next. Replayed: answered
	// from the dedup table, so the bulk delete may still be running (More is
	// then true). Recorded: the dedup table holds the bulk delete's running
	// total, Total (this chunk included).
	Bound    uint64
	Next     string
	More     bool
	Replayed bool
	Recorded bool
	Total    int
}

// ExpireResult is the outcome of OpExpire.
type ExpireResult struct {
	// Expired is the number of items actually removed.
	Expired int
}

// BarrierResult is the outcome of OpBarrier.
type BarrierResult struct{}

// BatchResult is OpBatch's response: Results[i] is what write i alone would
// have returned (a SetResult, DeleteResult or IncrResult).
type BatchResult struct {
	Results []interface{}
}
