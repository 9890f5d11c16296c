package fsm

import (
	"unsafe"

	"github.com/tidwall/btree"
)

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
//
// The key and the value live in one immutable allocation, kv (the key's
// bytes, then the value's), so an item is 40 bytes and one allocation
// instead of 56 bytes and two (a key string and a value slice): ~36 MB less
// at one million keys of 200 bytes (BenchmarkMemoryPerKey). kv is
// never written after newItem builds it, which is what makes handing out the
// value as a []byte view of it (value) safe: Entry.Value's callers must not
// mutate it, as before.
type item struct {
	kv        string
	klen      uint32
	Revision  uint64 // raft log index of the write that last changed the key
	ExpiresAt int64  // absolute Unix milliseconds; 0 = never expires
}

// newItem builds an item holding a copy of key and value.
func newItem(key string, value []byte, rev uint64, exp int64) item {
	buf := make([]byte, 0, len(key)+len(value))
	buf = append(buf, key...)
	buf = append(buf, value...)
	return item{kv: unsafe.String(unsafe.SliceData(buf), len(buf)), klen: uint32(len(key)), Revision: rev, ExpiresAt: exp}
}

// probe is an item that only carries key, for lookups.
func probe(key string) item { return item{kv: key, klen: uint32(len(key))} }

func (it item) key() string { return it.kv[:it.klen] }

// value returns the stored value, aliasing kv (nil when empty). Read only.
func (it item) value() []byte {
	v := it.kv[it.klen:]
	if v == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(v), len(v))
}

func (it item) entry() Entry {
	return Entry{Value: it.value(), Revision: it.Revision, ExpiresAt: it.ExpiresAt}
}

// Expired reports whether the item is expired at nowMs (see Entry.Expired).
func (it item) Expired(nowMs int64) bool {
	return Entry{ExpiresAt: it.ExpiresAt}.Expired(nowMs)
}

func itemLess(a, b item) bool { return a.key() < b.key() }

// expiryKey is an element of the expiry index (expiry.go), ordered by
// (at, key). The index stores a copy of the key's bytes (no pointer per
// pair); the keys it hands out alias them. Every write to an expiring entry
// removes and re-adds its expiryKey.
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
// (~115 bytes per 56-byte item at one million keys). Here every
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
