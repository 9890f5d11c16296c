package fsm

import (
	"slices"
	"sort"
)

// expiryIndex is the ordered set of expiryKeys of every entry that expires,
// smallest (at, key) first. It is guarded by FSM.mu like the primary tree.
//
// It is not a B-tree because its inserts are almost all appends: a key's
// expiry is the proposer's clock plus a TTL, so with similar TTLs every new
// pair sorts after the existing ones. A B-tree that splits full nodes in half
// leaves every node it appends past half empty (tidwall/btree measured 58
// bytes per 32-byte element); here an append fills the last chunk
// and then starts a new one, so chunks stay full. Unlike the primary index it
// needs no copy-on-write: snapshots do not capture it (Restore rebuilds it).
//
// Layout: chunks of at most expiryChunk pairs, each sorted, every pair of a
// chunk less than every pair of the next, no chunk empty. Finding a pair is a
// binary search over the chunks' last pairs, then one within the chunk. A
// full chunk that takes an insert first passes its last pair to the next chunk
// if that has room, else splits at the insertion point; a chunk
// that shrinks below a quarter merges into its left neighbour when they fit
// together, so random deletes cannot leave a trail of near-empty chunks.
type expiryIndex struct {
	chunks [][]expiryKey
	n      int
}

// expiryChunk: 128 pairs of 24 bytes are 3 KiB, an exact size class; big
// enough that the chunk list is small (8k chunks per million keys), small
// enough that an insert or delete moves at most a few KiB.
const expiryChunk = 128

func newExpiryIndex() *expiryIndex { return &expiryIndex{} }

// Len is the number of pairs.
func (x *expiryIndex) Len() int { return x.n }

// find returns the index of the first chunk whose last pair is >= k
// (len(chunks) when k is beyond every pair).
func (x *expiryIndex) find(k expiryKey) int {
	return sort.Search(len(x.chunks), func(i int) bool {
		c := x.chunks[i]
		return !expiryLess(c[len(c)-1], k)
	})
}

// Set adds k; a pair equal to k (same at and key) is replaced.
func (x *expiryIndex) Set(k expiryKey) {
	ci := x.find(k)
	if ci == len(x.chunks) {
		// Beyond every pair: append to the last chunk, or start a new one.
		if last := len(x.chunks) - 1; last >= 0 && len(x.chunks[last]) < expiryChunk {
			x.chunks[last] = append(x.chunks[last], k)
		} else {
			c := make([]expiryKey, 1, expiryChunk)
			c[0] = k
			x.chunks = append(x.chunks, c)
		}
		x.n++
		return
	}
	c := x.chunks[ci]
	i := sort.Search(len(c), func(i int) bool { return !expiryLess(c[i], k) })
	if i < len(c) && !expiryLess(k, c[i]) {
		c[i] = k
		return
	}
	if len(c) == expiryChunk && ci+1 < len(x.chunks) && len(x.chunks[ci+1]) < expiryChunk {
		// Make room by moving c's last pair to the front of the next chunk
		// (k < that pair, so order holds).
		next := append(x.chunks[ci+1], expiryKey{})
		copy(next[1:], next)
		next[0] = c[len(c)-1]
		x.chunks[ci+1] = next
		c[len(c)-1] = expiryKey{}
		c = c[:len(c)-1]
	}
	if len(c) == expiryChunk {
		// Split at the insertion point (i < len(c), since k < c's last
		// pair): k ends the left chunk and the pairs after it start the
		// right one. An insert just before the end, the common case
		// (proposals stamped a little out of log order), leaves the left
		// chunk full and a short right chunk for the appends that follow;
		// halving would leave a trail of half-full chunks.
		right := make([]expiryKey, expiryChunk-i, expiryChunk)
		copy(right, c[i:])
		clear(c[i:])
		x.chunks = append(x.chunks, nil)
		copy(x.chunks[ci+2:], x.chunks[ci+1:])
		x.chunks[ci], x.chunks[ci+1] = append(c[:i], k), right
		x.n++
		return
	}
	c = append(c, expiryKey{})
	copy(c[i+1:], c[i:])
	c[i] = k
	x.chunks[ci] = c
	x.n++
}

// Delete removes k if present.
func (x *expiryIndex) Delete(k expiryKey) {
	ci := x.find(k)
	if ci == len(x.chunks) {
		return
	}
	c := x.chunks[ci]
	i := sort.Search(len(c), func(i int) bool { return !expiryLess(c[i], k) })
	if i == len(c) || expiryLess(k, c[i]) {
		return
	}
	copy(c[i:], c[i+1:])
	c[len(c)-1] = expiryKey{} // drop the key string for the collector
	c = c[:len(c)-1]
	x.n--
	switch {
	case len(c) == 0:
		x.chunks = append(x.chunks[:ci], x.chunks[ci+1:]...)
		x.chunks[:len(x.chunks)+1][len(x.chunks)] = nil
	case len(c) < expiryChunk/4 && ci > 0 && len(x.chunks[ci-1])+len(c) <= expiryChunk:
		x.chunks[ci-1] = append(x.chunks[ci-1], c...)
		x.chunks = append(x.chunks[:ci], x.chunks[ci+1:]...)
		x.chunks[:len(x.chunks)+1][len(x.chunks)] = nil
	default:
		x.chunks[ci] = c
	}
}

// Min returns the smallest pair.
func (x *expiryIndex) Min() (expiryKey, bool) {
	if len(x.chunks) == 0 {
		return expiryKey{}, false
	}
	return x.chunks[0][0], true
}

// Scan calls fn for each pair in order until fn returns false.
func (x *expiryIndex) Scan(fn func(expiryKey) bool) {
	for _, c := range x.chunks {
		for _, k := range c {
			if !fn(k) {
				return
			}
		}
	}
}

// Ascend calls fn for each pair >= pivot in order until fn returns false.
func (x *expiryIndex) Ascend(pivot expiryKey, fn func(expiryKey) bool) {
	ci := x.find(pivot)
	if ci == len(x.chunks) {
		return
	}
	c := x.chunks[ci]
	start := sort.Search(len(c), func(i int) bool { return !expiryLess(c[i], pivot) })
	for _, k := range c[start:] {
		if !fn(k) {
			return
		}
	}
	for _, c := range x.chunks[ci+1:] {
		for _, k := range c {
			if !fn(k) {
				return
			}
		}
	}
}

// buildExpiryIndex returns the index of pairs (in any order, no duplicates),
// with every chunk full but the last. pairs is sorted in place and not kept.
func buildExpiryIndex(pairs []expiryKey) *expiryIndex {
	slices.SortFunc(pairs, func(a, b expiryKey) int {
		if expiryLess(a, b) {
			return -1
		}
		if expiryLess(b, a) {
			return 1
		}
		return 0
	})
	x := &expiryIndex{n: len(pairs), chunks: make([][]expiryKey, 0, (len(pairs)+expiryChunk-1)/expiryChunk)}
	for len(pairs) > 0 {
		c := make([]expiryKey, min(len(pairs), expiryChunk), expiryChunk)
		pairs = pairs[copy(c, pairs):]
		x.chunks = append(x.chunks, c)
	}
	return x
}
