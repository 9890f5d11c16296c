package fsm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"maps"
)

// The methods in this file are safe from any goroutine, concurrently with
// Apply, ApplyBatch, Restore and Persist.

// Get returns the entry for key, or false if it is missing or Expired(nowMs).
// The returned Value must not be mutated.
func (f *FSM) Get(key string, nowMs int64) (Entry, bool) {
	f.mu.RLock()
	it, ok := f.data.Get(probe(key))
	f.mu.RUnlock()
	if !ok || it.Expired(nowMs) {
		return Entry{}, false
	}
	return it.entry(), true
}

// Len returns the number of physical entries, including expired entries that
// no Expire command has removed yet.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.data.Len()
}

// AppliedIndex returns the index of the last log this FSM processed (of any
// type it received, including LogConfiguration), or the applied index recorded
// in the last restored snapshot, whichever came last. Once it returns i, reads
// observe every effect of the logs up to i.
func (f *FSM) AppliedIndex() uint64 {
	return f.applied.Load()
}

// WaitApplied blocks until AppliedIndex() >= index and returns nil, or returns
// ctx.Err() if ctx ends first. If the index is already reached it returns nil
// without looking at ctx.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		if f.applied.Load() >= index {
			return nil
		}
		f.waitMu.Lock()
		if f.waitCh == nil {
			f.waitCh = make(chan struct{})
		}
		ch := f.waitCh
		f.waitMu.Unlock()
		// An advance between the check above and taking ch closed a channel we
		// did not hold; re-check so that wake-up is not lost.
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ExpiredItems returns up to max entries with ExpiresAt <= nowMs, earliest
// expiry first (ties by key), each with its current revision, ready to be
// proposed as an Expire command. It walks the expiry index only, so its cost is
// proportional to the result, not to the number of entries.
func (f *FSM) ExpiredItems(nowMs int64, max int) []ExpireItem {
	items, _ := f.ExpiredItemsAfter(nowMs, ExpiryCursor{}, max)
	return items
}

// ExpiryCursor is a position in the expiry index (expiry time, then key). The
// zero cursor is before every entry.
type ExpiryCursor struct {
	at    int64
	key   string
	valid bool
}

// ExpiredItemsAfter is ExpiredItems that starts strictly after cursor and also
// returns the cursor of the last item returned (cursor itself when none is).
// A proposer that keeps several expire commands in flight passes the cursor of
// the previous batch, so it does not propose again items whose removal is
// proposed but not applied yet.
func (f *FSM) ExpiredItemsAfter(nowMs int64, cursor ExpiryCursor, max int) ([]ExpireItem, ExpiryCursor) {
	if max <= 0 {
		return nil, cursor
	}
	var out []ExpireItem
	next := cursor
	visit := func(k expiryKey) bool {
		if k.at > nowMs {
			return false
		}
		if cursor.valid && k.at == cursor.at && k.key == cursor.key {
			return true // Ascend starts at the pivot itself
		}
		if out == nil {
			out = make([]ExpireItem, 0, min(max, 64))
		}
		// The index holds only expiring entries, each once, so the entry is
		// there. Its key is the primary item's (immutable) string: k.key
		// aliases the index's bytes.
		it, _ := f.data.Get(probe(k.key))
		out = append(out, ExpireItem{Key: it.key(), Revision: it.Revision})
		next = ExpiryCursor{at: k.at, key: it.key(), valid: true}
		return len(out) < max
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if cursor.valid {
		f.expiry.Ascend(expiryKey{at: cursor.at, key: cursor.key}, visit)
	} else {
		f.expiry.Scan(visit)
	}
	return out, next
}

// ExpiredCount returns the number of entries in the expiry index that have
// expired at nowMs (removal proposed or not): the backlog a proposer paces.
func (f *FSM) ExpiredCount(nowMs int64) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.expiry.CountUpTo(nowMs)
}

// NextExpiry returns the earliest ExpiresAt in the expiry index, or false if no
// entry expires. The entry may already be expired.
func (f *FSM) NextExpiry() (int64, bool) {
	f.mu.RLock()
	k, ok := f.expiry.Min()
	f.mu.RUnlock()
	return k.at, ok
}

// Hash returns the hex SHA-256 of every entry in key order: for each entry,
// uvarint len(key), key, uvarint len(value), value, then revision and expiresAt
// as 8 big-endian bytes each; then, if the dedup table is not empty, the byte
// 0xff and for each idempotency entry in key order: uvarint len(key), key, the
// fingerprint, uvarint len(result), result, createdAt as 8 big-endian bytes;
// then, while an online restore is staged, the byte 0xfe, its id and next
// chunk as 8 big-endian bytes each, and the staged bytes; then, when not 0,
// the byte 0xfd and the last command time (LastNow) as 8 big-endian bytes;
// then the node address table, if not empty (see hashNodes).
// Replicas with equal state have equal hashes. The applied index is not
// included.
//
// Hash holds the write lock only for O(1) copy-on-write copies of the trees and
// hashes the copies without a lock, so it does not stall Apply for long.
func (f *FSM) Hash() string { return f.hash(true) }

// DataHash is Hash over what a backup carries: entries and the idempotency
// table, without cluster metadata (node addresses, a staged restore) or the
// last command time. A
// cluster restored from a backup has the DataHash of the cluster it came from.
func (f *FSM) DataHash() string { return f.hash(false) }

func (f *FSM) hash(withMeta bool) string {
	f.mu.Lock()
	data := f.data.Copy()
	idem := f.idem.Copy()
	var staging restoreStaging
	var nodes map[string]string
	var lastNow int64
	var cluster string
	if withMeta {
		staging = f.staging
		nodes = maps.Clone(f.nodes)
		lastNow = f.lastNow.Load()
		cluster = f.clusterID
	}
	f.mu.Unlock()

	h := sha256.New()
	var scratch [2*binary.MaxVarintLen64 + 16]byte
	data.Scan(func(it item) bool {
		b := binary.AppendUvarint(scratch[:0], uint64(len(it.key())))
		h.Write(b)
		io.WriteString(h, it.key())
		b = binary.AppendUvarint(scratch[:0], uint64(len(it.value())))
		h.Write(b)
		h.Write(it.value())
		b = binary.BigEndian.AppendUint64(scratch[:0], it.Revision)
		b = binary.BigEndian.AppendUint64(b, uint64(it.ExpiresAt))
		h.Write(b)
		return true
	})
	if idem.Len() > 0 {
		h.Write([]byte{0xff})
	}
	idem.Scan(func(e idemEntry) bool {
		b := binary.AppendUvarint(scratch[:0], uint64(len(e.key)))
		h.Write(b)
		io.WriteString(h, e.key)
		h.Write(e.fingerprint[:])
		b = binary.AppendUvarint(scratch[:0], uint64(len(e.result)))
		h.Write(b)
		h.Write(e.result)
		b = binary.BigEndian.AppendUint64(scratch[:0], uint64(e.createdAt))
		h.Write(b)
		return true
	})
	if staging.id != 0 {
		b := append(scratch[:0], 0xfe)
		b = binary.BigEndian.AppendUint64(b, staging.id)
		b = binary.BigEndian.AppendUint64(b, staging.next)
		b = binary.BigEndian.AppendUint64(b, uint64(staging.updatedAt))
		h.Write(b)
		h.Write(staging.data)
	}
	if lastNow != 0 {
		b := append(scratch[:0], 0xfd)
		h.Write(binary.BigEndian.AppendUint64(b, uint64(lastNow)))
	}
	hashNodes(h, nodes)
	if cluster != "" {
		h.Write([]byte{0xfc})
		h.Write(binary.AppendUvarint(nil, uint64(len(cluster))))
		io.WriteString(h, cluster)
	}
	return hex.EncodeToString(h.Sum(nil))
}
