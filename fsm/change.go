package fsm

// ChangeType says what a Change did to its key.
type ChangeType uint8

const (
	// ChangeSet: the key now holds Value (a set, incr, touch or PATCH; a
	// touch changes only the expiry but is a new version all the same).
	ChangeSet ChangeType = iota + 1
	// ChangeDelete: the key was removed by a delete or a bulk delete.
	ChangeDelete
	// ChangeExpire: the key was removed because its TTL had passed (an
	// expire command), never for any other reason.
	ChangeExpire
	// ChangeReset: the whole state was replaced (an online restore's commit,
	// or a raft snapshot installed on this replica); Key is empty. Whoever
	// mirrors the state must read it again.
	ChangeReset
)

func (t ChangeType) String() string {
	switch t {
	case ChangeSet:
		return "set"
	case ChangeDelete:
		return "delete"
	case ChangeExpire:
		return "expire"
	case ChangeReset:
		return "reset"
	}
	return "unknown"
}

// Change is one key's mutation by one log entry. An entry that changes
// several keys (a batch, a bulk-delete chunk, a transaction) yields one Change
// per changed key, all with the entry's Index, in the order applied. A command
// that changes nothing (a failed condition, a delete of a missing key, an
// expire whose revision no longer matches) yields none.
type Change struct {
	Type ChangeType
	Key  string
	// Value is the stored value after a ChangeSet (nil otherwise). It aliases
	// the FSM's immutable storage: read only.
	Value []byte
	// Version is the key's revision after a ChangeSet (== Index), and Index
	// for the other types.
	Version uint64
	// ExpiresAt is the absolute expiry (Unix ms, 0: none) after a ChangeSet;
	// for a delete or expire, the removed entry's expiry.
	ExpiresAt int64
	Index     uint64
}

// ChangeObserver receives the changes applied to the FSM, in log order.
//
// Applied runs on raft's FSM goroutine after the changes of the entries up to
// index are in place and the FSM lock is released, and before AppliedIndex
// reports index: an observer therefore never lags the index a reader can wait
// for. It is called for every apply call that advances the index, with no
// changes when the entries changed no key (so the observer learns the applied
// index too). It must not block (Apply waits for it) and must not keep
// changes (the slice is reused), though it may keep its elements.
type ChangeObserver interface {
	Applied(changes []Change, index uint64)
}

// SetChangeObserver installs o (nil removes it). Call it before raft starts
// applying: it is not synchronised with Apply. Without an observer the FSM
// records no changes and pays nothing for them.
func (f *FSM) SetChangeObserver(o ChangeObserver) { f.observer = o }

// emit records one change for the observer; f.mu is held for writing. Every
// per-key mutation helper (put, removeAs, and the transaction code that goes
// through them) calls it, so no key changes without a Change.
func (f *FSM) emit(c Change) {
	if f.observer != nil {
		f.changes = append(f.changes, c)
	}
}

// publish hands the pending changes to the observer and publishes index as
// the applied index (see advance). Called without f.mu.
func (f *FSM) publish(index uint64) {
	if f.observer != nil {
		f.observer.Applied(f.changes, index)
		clear(f.changes)
		f.changes = f.changes[:0]
	}
	f.advance(index)
}
