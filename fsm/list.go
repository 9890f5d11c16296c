package fsm

import "strings"

// ListEntry is one live entry returned by List.
type ListEntry struct {
	Key string
	Entry
}

// List returns up to limit live entries (not Expired(nowMs)) whose keys start
// with prefix and sort strictly after after, in ascending byte order of keys.
// more reports whether at least one further live matching entry exists. Values
// are shared with the FSM and must not be mutated.
//
// A caller paging with after = the last key of the previous page sees every
// key that was present for the whole scan exactly once: keys are visited in
// order and each page resumes strictly after the last one returned. It holds
// the read lock for the scan, whose length is limit plus the expired entries
// it skips.
func (f *FSM) List(prefix, after string, limit int, nowMs int64) (entries []ListEntry, more bool) {
	if limit <= 0 {
		return nil, false
	}
	start := prefix
	if after > start {
		start = after
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.data.Ascend(probe(start), func(it item) bool {
		if !strings.HasPrefix(it.key(), prefix) {
			return false
		}
		if it.key() == after || it.Expired(nowMs) {
			return true
		}
		if len(entries) == limit {
			more = true
			return false
		}
		entries = append(entries, ListEntry{Key: it.key(), Entry: it.entry()})
		return true
	})
	return entries, more
}
