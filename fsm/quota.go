package fsm

// Storage quotas are enforced by the leader before it proposes a write
// (store/DESIGN.md, "Storage quotas"), never inside Apply: these read-only
// helpers tell the leader what a write would add. They are safe from any
// goroutine, concurrently with Apply.

// Footprint returns the bytes key occupies in the quota's measure (its
// length plus its value's) and whether an entry is physically stored at it,
// expired or not: an expired entry that is still stored counts, as it does in
// Stats.
func (f *FSM) Footprint(key string) (size int64, stored bool) {
	f.mu.RLock()
	it, ok := f.data.Get(probe(key))
	f.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return int64(len(it.kv)), true
}

// AnsweredFromDedup reports whether a command with this idempotency key and
// fingerprint, applied with Now = nowMs, would be answered from the dedup
// table (the original result, or idempotency_key_reused) instead of applied.
// Such a retry writes nothing, so a quota must not refuse it.
func (f *FSM) AnsweredFromDedup(op Op, idemKey string, fingerprint [FingerprintSize]byte, nowMs int64) bool {
	if idemKey == "" {
		return false
	}
	cmd := Command{Op: op, IdemKey: idemKey, Fingerprint: fingerprint, Now: nowMs}
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.lookupIdem(&cmd)
	return ok
}
