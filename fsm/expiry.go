package fsm

import (
	"slices"
	"sort"
	"unsafe"
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
//
// A chunk holds no pointer per pair: times, key end offsets and the keys'
// bytes are three pointer-free arrays (expiryChunkData). The garbage
// collector marks the whole live heap in every cycle, and a pointer per
// expiring key (a key string shared with the primary item) was a million
// scattered pointers to follow at a million keys: BenchmarkGCMark1M measured
// the collection ~40 % shorter without them (store/DESIGN.md has the
// figures). The price is a second copy of each key's bytes, about what the
// 16-byte string header cost; per-pair memory is unchanged.
type expiryIndex struct {
	chunks []*expiryChunkData
	n      int
}

// expiryChunk: the most pairs a chunk holds. Big enough that the chunk list
// is small (8k chunks per million keys), small enough that an insert or
// delete moves at most a few KiB.
const expiryChunk = 128

// expiryChunkData is one chunk: pair i is (at[i], keys[end[i-1]:end[i]]),
// with end[-1] = 0. All three slices are pointer-free, so the collector does
// not scan them.
type expiryChunkData struct {
	at   []int64
	end  []uint32
	keys []byte
}

func newExpiryChunk() *expiryChunkData {
	return &expiryChunkData{at: make([]int64, 0, expiryChunk), end: make([]uint32, 0, expiryChunk)}
}

func (c *expiryChunkData) len() int { return len(c.at) }

func (c *expiryChunkData) start(i int) uint32 {
	if i == 0 {
		return 0
	}
	return c.end[i-1]
}

// key returns pair i's key. It aliases the chunk's bytes, which later
// changes to the chunk overwrite: valid until the index is next modified.
func (c *expiryChunkData) key(i int) string {
	b := c.keys[c.start(i):c.end[i]]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (c *expiryChunkData) pair(i int) expiryKey { return expiryKey{at: c.at[i], key: c.key(i)} }

func (c *expiryChunkData) last() expiryKey { return c.pair(c.len() - 1) }

// search returns the first i whose pair is >= k (len when none is).
func (c *expiryChunkData) search(k expiryKey) int {
	return sort.Search(c.len(), func(i int) bool { return !expiryLess(c.pair(i), k) })
}

// insert puts k at position i (order is the caller's business). k's key is
// copied; it may alias another chunk, never this one.
func (c *expiryChunkData) insert(i int, k expiryKey) {
	s := c.start(i)
	kl := uint32(len(k.key))
	c.keys = append(c.keys, k.key...) // grow by len(k.key), then shift
	copy(c.keys[s+kl:], c.keys[s:len(c.keys)-int(kl)])
	copy(c.keys[s:], k.key)
	c.at = slices.Insert(c.at, i, k.at)
	c.end = slices.Insert(c.end, i, s+kl)
	for j := i + 1; j < len(c.end); j++ {
		c.end[j] += kl
	}
}

// remove drops pair i.
func (c *expiryChunkData) remove(i int) {
	s, e := c.start(i), c.end[i]
	c.keys = slices.Delete(c.keys, int(s), int(e))
	c.at = slices.Delete(c.at, i, i+1)
	c.end = slices.Delete(c.end, i, i+1)
	for j := i; j < len(c.end); j++ {
		c.end[j] -= e - s
	}
}

// appendFrom appends pairs [from, d.len()) of d (which must sort after c's).
func (c *expiryChunkData) appendFrom(d *expiryChunkData, from int) {
	base, s := uint32(len(c.keys)), d.start(from)
	c.keys = append(c.keys, d.keys[s:]...)
	c.at = append(c.at, d.at[from:]...)
	for _, e := range d.end[from:] {
		c.end = append(c.end, base+e-s)
	}
}

// truncate keeps the first n pairs.
func (c *expiryChunkData) truncate(n int) {
	c.keys = c.keys[:c.start(n)]
	c.at = c.at[:n]
	c.end = c.end[:n]
}

func newExpiryIndex() *expiryIndex { return &expiryIndex{} }

// Len is the number of pairs.
func (x *expiryIndex) Len() int { return x.n }

// find returns the index of the first chunk whose last pair is >= k
// (len(chunks) when k is beyond every pair).
func (x *expiryIndex) find(k expiryKey) int {
	return sort.Search(len(x.chunks), func(i int) bool {
		return !expiryLess(x.chunks[i].last(), k)
	})
}

// Set adds k; a pair equal to k (same at and key) is kept. The key's bytes
// are copied.
func (x *expiryIndex) Set(k expiryKey) {
	ci := x.find(k)
	if ci == len(x.chunks) {
		// Beyond every pair: append to the last chunk, or start a new one.
		last := len(x.chunks) - 1
		if last < 0 || x.chunks[last].len() >= expiryChunk {
			x.chunks = append(x.chunks, newExpiryChunk())
			last++
		}
		c := x.chunks[last]
		c.insert(c.len(), k)
		x.n++
		return
	}
	c := x.chunks[ci]
	i := c.search(k)
	if i < c.len() && !expiryLess(k, c.pair(i)) {
		return // present
	}
	if c.len() == expiryChunk && ci+1 < len(x.chunks) && x.chunks[ci+1].len() < expiryChunk {
		// Make room by moving c's last pair to the front of the next chunk
		// (k < that pair, so order holds).
		x.chunks[ci+1].insert(0, c.last())
		c.truncate(c.len() - 1)
	}
	if c.len() == expiryChunk {
		// Split at the insertion point (i < len(c), since k < c's last
		// pair): k ends the left chunk and the pairs after it start the
		// right one. An insert just before the end, the common case
		// (proposals stamped a little out of log order), leaves the left
		// chunk full and a short right chunk for the appends that follow;
		// halving would leave a trail of half-full chunks.
		right := newExpiryChunk()
		right.appendFrom(c, i)
		c.truncate(i)
		c.insert(i, k)
		x.chunks = slices.Insert(x.chunks, ci+1, right)
		x.n++
		return
	}
	c.insert(i, k)
	x.n++
}

// Delete removes k if present.
func (x *expiryIndex) Delete(k expiryKey) {
	ci := x.find(k)
	if ci == len(x.chunks) {
		return
	}
	c := x.chunks[ci]
	i := c.search(k)
	if i == c.len() || expiryLess(k, c.pair(i)) {
		return
	}
	c.remove(i)
	x.n--
	switch {
	case c.len() == 0:
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
	case c.len() < expiryChunk/4 && ci > 0 && x.chunks[ci-1].len()+c.len() <= expiryChunk:
		x.chunks[ci-1].appendFrom(c, 0)
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
	}
}

// Min returns the smallest pair (its key valid until the index changes).
func (x *expiryIndex) Min() (expiryKey, bool) {
	if len(x.chunks) == 0 {
		return expiryKey{}, false
	}
	return x.chunks[0].pair(0), true
}

// Scan calls fn for each pair in order until fn returns false. The key fn
// receives aliases the index: fn must copy it to keep it, and must not
// modify the index.
func (x *expiryIndex) Scan(fn func(expiryKey) bool) {
	for _, c := range x.chunks {
		for i := range c.len() {
			if !fn(c.pair(i)) {
				return
			}
		}
	}
}

// Ascend calls fn for each pair >= pivot in order until fn returns false,
// under Scan's rules.
func (x *expiryIndex) Ascend(pivot expiryKey, fn func(expiryKey) bool) {
	ci := x.find(pivot)
	if ci == len(x.chunks) {
		return
	}
	c := x.chunks[ci]
	for i := c.search(pivot); i < c.len(); i++ {
		if !fn(c.pair(i)) {
			return
		}
	}
	for _, c := range x.chunks[ci+1:] {
		for i := range c.len() {
			if !fn(c.pair(i)) {
				return
			}
		}
	}
}

// CountUpTo returns the number of pairs whose time is at most at.
func (x *expiryIndex) CountUpTo(at int64) int {
	ci := sort.Search(len(x.chunks), func(i int) bool {
		c := x.chunks[i]
		return c.at[c.len()-1] > at
	})
	n := 0
	for _, c := range x.chunks[:ci] {
		n += c.len()
	}
	if ci < len(x.chunks) {
		c := x.chunks[ci]
		n += sort.Search(c.len(), func(i int) bool { return c.at[i] > at })
	}
	return n
}

// buildExpiryIndex returns the index of pairs (in any order, no duplicates),
// with every chunk full but the last, each chunk's key bytes in an array of
// exactly their size. pairs is sorted in place and not kept.
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
	x := &expiryIndex{n: len(pairs), chunks: make([]*expiryChunkData, 0, (len(pairs)+expiryChunk-1)/expiryChunk)}
	for len(pairs) > 0 {
		part := pairs[:min(len(pairs), expiryChunk)]
		pairs = pairs[len(part):]
		size := 0
		for _, k := range part {
			size += len(k.key)
		}
		c := newExpiryChunk()
		c.keys = make([]byte, 0, size)
		for _, k := range part {
			c.keys = append(c.keys, k.key...)
			c.at = append(c.at, k.at)
			c.end = append(c.end, uint32(len(c.keys)))
		}
		x.chunks = append(x.chunks, c)
	}
	return x
}
