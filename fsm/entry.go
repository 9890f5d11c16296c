package fsm

import "github.com/tidwall/btree"

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

// sortedLoader builds a primary index from items that arrive in strictly
// ascending key order (a snapshot stream, a restore), leaving its leaves
// about 85% full instead of half full.
//
// tidwall/btree's Load appends to the rightmost leaf and, when it is full,
// splits it in half; nothing is ever added to the left half again, so a tree
// loaded in order has every leaf half full, in an array sized for a full one
// (~115 bytes per 56-byte item at one million keys, issue 7). Here every
// other item is loaded that way and the rest are inserted afterwards: each
// half-full leaf receives the items between its own, and fills up without
// splitting. The odd items wait in a slice (half the items' size, freed by
// finish).
type sortedLoader struct {
	tree *btree.BTreeG[item]
	odd  []item
	n    int
}

func newSortedLoader() *sortedLoader { return &sortedLoader{tree: newDataTree()} }

// add takes the next item; its key must be greater than every earlier one.
func (l *sortedLoader) add(it item) {
	if l.n%2 == 0 {
		l.tree.Load(it)
	} else {
		l.odd = append(l.odd, it)
	}
	l.n++
}

// finish inserts the held items and returns the tree.
func (l *sortedLoader) finish() *btree.BTreeG[item] {
	var hint btree.PathHint
	for _, it := range l.odd {
		l.tree.SetHint(it, &hint)
	}
	l.odd = nil
	return l.tree
}
