package fsm

// Entry is one stored key. Value is compact JSON bytes; callers must not mutate
// it, and the FSM never mutates a stored slice in place.
type Entry struct {
	Value     []byte
	Revision  uint64 // raft log index of the write that last changed the key
	ExpiresAt int64  // absolute Unix milliseconds; 0 = never expires
}

// Expired reports whether e is expired at nowMs (ExpiresAt != 0 && ExpiresAt <= nowMs).
func (e Entry) Expired(nowMs int64) bool {
	return e.ExpiresAt != 0 && e.ExpiresAt <= nowMs
}

// item is an element of the primary index, ordered by key bytes. It is stored
// by value: the tree copies items when it copies a node, and never shares an
// item between a snapshot and the live tree in a way either side can mutate.
type item struct {
	key string
	Entry
}

func itemLess(a, b item) bool { return a.key < b.key }

// expiryKey is an element of the expiry index (expiry.go), ordered by
// (at, key). key shares the entry's key string. Every write to an expiring
// entry removes and re-adds its expiryKey.
type expiryKey struct {
	at  int64
	key string
}

func expiryLess(a, b expiryKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.key < b.key
}
