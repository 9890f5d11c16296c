package fsm

// Stats are running totals about the state, for monitoring. They are kept by
// the apply path under the write lock (a few integer additions per command,
// no scans) and are a function of the log alone, like the state they
// describe, but they are not replicated state: they are not in snapshots or
// in Hash, and Expired counts only what this replica applied since it started.
type Stats struct {
	// Keys is the number of physical entries, expired ones that no expire
	// command has removed yet included (as Len).
	Keys int
	// ValueBytes is the total length of the stored values, expired entries
	// included.
	ValueBytes int64
	// KeyBytes is the total length of the stored keys, expired entries
	// included. KeyBytes + ValueBytes is the data size storage quotas limit.
	KeyBytes int64
	// Expired counts the entries removed by expire commands that this replica
	// applied since it started (a Prometheus-style counter: it restarts at 0).
	Expired uint64
}

// stats is the FSM's part of Stats, guarded by FSM.mu like the trees.
type stats struct {
	valueBytes int64
	keyBytes   int64
	expired    uint64
}

// Stats returns the running totals. Safe from any goroutine; it takes the
// read lock once and costs O(1).
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{Keys: f.data.Len(), ValueBytes: f.stats.valueBytes, KeyBytes: f.stats.keyBytes, Expired: f.stats.expired}
}

// bytesOf sums the value and key lengths in a tree that is about to replace
// the state (restore): O(n), like building the tree was.
func bytesOf(data interface{ Scan(func(item) bool) }) (values, keys int64) {
	data.Scan(func(it item) bool {
		values += int64(len(it.value()))
		keys += int64(len(it.key()))
		return true
	})
	return values, keys
}
