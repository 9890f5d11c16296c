package fsm

// Apply and ApplyBatch return exactly one of these per LogCommand, as a value
// (never a pointer). Business outcomes are results, not errors or panics: the
// only panic is a committed entry that cannot be decoded.

// SetResult is the outcome of OpSet.
type SetResult struct {
	// Created: no live entry existed at cmd.Now (missing or expired counts as created).
	Created bool
	// Revision is the new revision of the key: the log index of this command.
	Revision uint64
	// ExpiresAt is the stored expiry, as proposed (0 = never).
	ExpiresAt int64
}

// DeleteResult is the outcome of OpDelete.
type DeleteResult struct {
	// Deleted: a live entry (at cmd.Now) was removed. A present-but-expired entry
	// is physically removed too but Deleted is false.
	Deleted bool
	// Revision is the log index of this delete command (not the revision of the
	// removed entry); it is set whether or not anything was deleted.
	Revision uint64
}

// ExpireResult is the outcome of OpExpire.
type ExpireResult struct {
	// Expired is the number of items actually removed.
	Expired int
}

// BarrierResult is the outcome of OpBarrier.
type BarrierResult struct{}
