package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/tidwall/btree"
)

// The dedup table makes a retried idempotent command apply at most once. It is
// replicated state: it changes only inside Apply, is judged only against
// command time (Command.Now, made monotonic by Apply: see FSM.LastNow), and
// travels in snapshots, so it survives leader changes, snapshots and restarts
// exactly like the data.
//
// The window is a guarantee: Apply never removes an entry before it has aged
// (IdempotencyWindowMs of command time), whatever the write rate. The table's
// size is therefore bounded by admission, not by eviction: the proposer reads
// IdempotencyUsage and refuses (StatusIdempotencyTableFull) a new keyed write
// that would take the table past its byte budget. The budget is the
// proposer's setting, not replicated state, so replicas with different
// settings cannot diverge: Apply's behaviour does not depend on it.
const (
	// IdempotencyWindowMs is how long, in command time (Command.Now of later
	// commands, i.e. the proposing leaders' clocks, never running backwards),
	// a recorded result answers retries: an entry created at t is ignored by
	// commands with Now >= t+window and pruned by them, never earlier.
	IdempotencyWindowMs = 10 * 60 * 1000

	// idemPruneBatch bounds the aged entries one command removes, so no single
	// Apply pays for a long quiet period. Each command records at most one
	// entry, so pruning always outpaces growth.
	idemPruneBatch = 64

	// IdempotencyEntryOverhead is the fixed part of an entry's accounted size:
	// the entry and age-index slots in their trees (struct fields, string and
	// slice headers, createdAt, the trees' slack) and allocator rounding of
	// the key and result. Chosen so the accounted size matches the live heap:
	// BenchmarkIdempotencyTableMemory measured 288 heap bytes per entry for a
	// 40-byte scoped UUID key, 287 accounted.
	IdempotencyEntryOverhead = 208

	// maxRecordedResult is the longest encodeResult output (incr: tag,
	// status, flag and four varints).
	maxRecordedResult = 3 + 4*binary.MaxVarintLen64
)

// IdempotencyEntryBytes is the accounted size of a dedup entry with this key
// and an encoded result of resultLen bytes. The accounting is a function of
// the entries alone, so every replica computes the same table size.
func IdempotencyEntryBytes(key string, resultLen int) int64 {
	return int64(len(key)) + int64(resultLen) + FingerprintSize + IdempotencyEntryOverhead
}

// IdempotencyEntryBytesBound is the largest accounted size a new entry under
// key can have, whatever its result: what a proposer reserves for it.
func IdempotencyEntryBytesBound(key string) int64 {
	return IdempotencyEntryBytes(key, maxRecordedResult)
}

// idemEntry is one recorded idempotent command: its fingerprint and the
// encoded result it produced.
type idemEntry struct {
	key         string
	fingerprint [FingerprintSize]byte
	result      []byte // encodeResult of the original result; never mutated
	createdAt   int64  // Command.Now of the command that recorded it
}

func idemLess(a, b idemEntry) bool { return a.key < b.key }

// idemAgeKey orders entries by age for pruning and eviction.
type idemAgeKey struct {
	at  int64
	key string
}

func idemAgeLess(a, b idemAgeKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.key < b.key
}

func newIdemTree() *btree.BTreeG[idemEntry] { return btree.NewBTreeGOptions(idemLess, treeOptions) }

func newIdemAgeTree() *btree.BTreeG[idemAgeKey] {
	return btree.NewBTreeGOptions(idemAgeLess, treeOptions)
}

// idemAged reports whether an entry created at createdAt is outside the window
// for a command at now (computed without overflow for any int64 inputs).
func idemAged(createdAt, now int64) bool {
	if now < math.MinInt64+IdempotencyWindowMs {
		return false
	}
	return createdAt <= now-IdempotencyWindowMs
}

// pruneIdem removes up to idemPruneBatch entries that are aged at now.
func (f *FSM) pruneIdem(now int64) {
	for range idemPruneBatch {
		k, ok := f.idemAge.Min()
		if !ok || !idemAged(k.at, now) {
			return
		}
		f.idemAge.PopMin()
		if e, ok := f.idem.Delete(idemEntry{key: k.key}); ok {
			f.idemBytes -= e.bytes()
		}
	}
}

func (e idemEntry) bytes() int64 { return IdempotencyEntryBytes(e.key, len(e.result)) }

// lookupIdem answers cmd from the dedup table if its key is recorded and not
// aged: the recorded result for the same fingerprint, a
// StatusIdempotencyKeyReused result of cmd's op for another.
func (f *FSM) lookupIdem(cmd *Command) (interface{}, bool) {
	e, ok := f.idem.Get(idemEntry{key: cmd.IdemKey})
	if !ok || idemAged(e.createdAt, cmd.Now) {
		return nil, false
	}
	if e.fingerprint != cmd.Fingerprint {
		return reusedResult(cmd.Op), true
	}
	res, err := decodeResult(e.result)
	if err != nil { // the table only holds what encodeResult wrote
		panic(fmt.Sprintf("fsm: dedup entry %q holds an undecodable result: %v", e.key, err))
	}
	return res, true
}

// recordIdem records res under cmd's idempotency key, replacing an aged entry
// with the same key. It never evicts an entry: see the package constants.
func (f *FSM) recordIdem(cmd *Command, res interface{}) {
	e := idemEntry{key: cmd.IdemKey, fingerprint: cmd.Fingerprint, result: encodeResult(res), createdAt: cmd.Now}
	if prev, replaced := f.idem.Set(e); replaced {
		f.idemAge.Delete(idemAgeKey{at: prev.createdAt, key: prev.key})
		f.idemBytes -= prev.bytes()
	}
	f.idemAge.Set(idemAgeKey{at: e.createdAt, key: e.key})
	f.idemBytes += e.bytes()
}

// IdempotencyEntries returns the number of entries in the dedup table.
func (f *FSM) IdempotencyEntries() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.idem.Len()
}

// IdempotencyUsage describes the dedup table for admission and monitoring.
type IdempotencyUsage struct {
	// Entries and Bytes (IdempotencyEntryBytes summed) include aged entries
	// that later commands have not pruned yet.
	Entries int
	Bytes   int64
	// Oldest is the createdAt (command time, Unix ms) of the oldest entry;
	// meaningful only when Entries > 0.
	Oldest int64
}

// IdempotencyUsage returns the dedup table's size. Safe from any goroutine; O(1).
func (f *FSM) IdempotencyUsage() IdempotencyUsage {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u := IdempotencyUsage{Entries: f.idem.Len(), Bytes: f.idemBytes}
	if k, ok := f.idemAge.Min(); ok {
		u.Oldest = k.at
	}
	return u
}

// IdempotencyRecorded reports whether key has an entry that is still in the
// window at command time now: a command with that key would be answered from
// the table and record nothing new. Safe from any goroutine.
func (f *FSM) IdempotencyRecorded(key string, now int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.idem.Get(idemEntry{key: key})
	return ok && !idemAged(e.createdAt, now)
}

// IdempotencyAged reports whether an entry created at createdAt has left the
// window at command time now (and so may be pruned by a command at now).
func IdempotencyAged(createdAt, now int64) bool { return idemAged(createdAt, now) }

func reusedResult(op Op) interface{} {
	switch op {
	case OpDelete:
		return DeleteResult{Status: StatusIdempotencyKeyReused}
	case OpIncr:
		return IncrResult{Status: StatusIdempotencyKeyReused}
	case OpDeletePrefix, OpDeletePrefixChunk:
		return DeletePrefixResult{Status: StatusIdempotencyKeyReused}
	case OpTxn:
		return TxnResult{Status: StatusIdempotencyKeyReused}
	default:
		return SetResult{Status: StatusIdempotencyKeyReused}
	}
}

// Result encoding for the dedup table (and so for snapshots and Hash):
//
//	set:           1 status created  uvarint revision  varint expiresAt  uvarint current
//	delete:        2 status deleted  uvarint revision  uvarint current
//	incr:          3 status created  varint value  uvarint revision  varint expiresAt  uvarint current
//	delete-prefix: 4 status  uvarint deleted  uvarint revision
const (
	resultSet          = 1
	resultDelete       = 2
	resultIncr         = 3
	resultDeletePrefix = 4
)

var errBadResult = errors.New("fsm: malformed recorded result")

func encodeResult(res interface{}) []byte {
	b := make([]byte, 0, 32)
	switch r := res.(type) {
	case SetResult:
		b = append(b, resultSet, byte(r.Status), boolByte(r.Created))
		b = binary.AppendUvarint(b, r.Revision)
		b = binary.AppendVarint(b, r.ExpiresAt)
		b = binary.AppendUvarint(b, r.Current)
	case DeleteResult:
		b = append(b, resultDelete, byte(r.Status), boolByte(r.Deleted))
		b = binary.AppendUvarint(b, r.Revision)
		b = binary.AppendUvarint(b, r.Current)
	case IncrResult:
		b = append(b, resultIncr, byte(r.Status), boolByte(r.Created))
		b = binary.AppendVarint(b, r.Value)
		b = binary.AppendUvarint(b, r.Revision)
		b = binary.AppendVarint(b, r.ExpiresAt)
		b = binary.AppendUvarint(b, r.Current)
	case DeletePrefixResult:
		b = append(b, resultDeletePrefix, byte(r.Status))
		b = binary.AppendUvarint(b, uint64(r.Deleted))
		b = binary.AppendUvarint(b, r.Revision)
	case TxnResult:
		b = appendTxnResult(b, r)
	case TxnGetResult:
		b = appendTxnGetResult(b, r)
	default:
		// Only client write ops carry idempotency keys (Decode enforces it).
		panic(fmt.Sprintf("fsm: cannot record result %T", res))
	}
	return b
}

// decodeResult parses encodeResult's output strictly.
func decodeResult(b []byte) (interface{}, error) {
	if len(b) < 2 || !recordable(Status(b[1])) {
		return nil, errBadResult
	}
	d := decoder{b: b, off: 2}
	st := Status(b[1])
	flagByte := func() bool {
		if d.err == nil && d.remaining() < 1 {
			d.fail("truncated result")
		}
		if d.err != nil {
			return false
		}
		v := d.b[d.off]
		d.off++
		if v > 1 {
			d.fail("bad boolean")
		}
		return v == 1
	}
	var res interface{}
	switch b[0] {
	case resultSet:
		r := SetResult{Status: st, Created: flagByte()}
		r.Revision = d.uvarint("revision")
		r.ExpiresAt = d.varint("expiresAt")
		r.Current = d.uvarint("current")
		res = r
	case resultDelete:
		r := DeleteResult{Status: st, Deleted: flagByte()}
		r.Revision = d.uvarint("revision")
		r.Current = d.uvarint("current")
		res = r
	case resultIncr:
		r := IncrResult{Status: st, Created: flagByte()}
		r.Value = d.varint("value")
		r.Revision = d.uvarint("revision")
		r.ExpiresAt = d.varint("expiresAt")
		r.Current = d.uvarint("current")
		res = r
	case resultDeletePrefix:
		r := DeletePrefixResult{Status: st}
		n := d.uvarint("deleted")
		if n > uint64(math.MaxInt) {
			d.fail("deleted count %d", n)
		}
		r.Deleted = int(n)
		r.Revision = d.uvarint("revision")
		res = r
	case resultTxn:
		res = d.txnResult(st)
	case resultTxnGet:
		r := TxnGetResult{Found: flagByte()}
		r.Value = d.bytes("value")
		r.Revision = d.uvarint("revision")
		r.ExpiresAt = d.varint("expiresAt")
		res = r
	default:
		return nil, errBadResult
	}
	if d.err == nil && d.remaining() != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", errBadResult, d.err)
	}
	return res, nil
}

// recordable reports whether Apply can produce st (so a recorded result may
// hold it).
func recordable(st Status) bool {
	return st <= StatusIdempotencyKeyReused || (st >= StatusTxnCheckFailed && st <= StatusTxnReadTooLarge)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
