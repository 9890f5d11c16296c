package store

import (
	"fmt"

	"github.com/quorumkv/quorumkv/fsm"
)

// Storage quotas (DESIGN.md, "Storage quotas"). The leader checks each write
// against its state machine before proposing it, as etcd checks its backend
// quota; Apply never looks at a limit, so replicas with different flags
// cannot diverge, and the FSM and its codec are unchanged. The check reads
// applied state, so writes proposed concurrently can overshoot a limit by
// at most what is in flight (a write batch or two); the next write after
// them is refused.

// maxIncrBytes is the longest value an incr can store (the decimal text of
// math.MinInt64).
const maxIncrBytes = 20

// Quota returns this node's data against its quotas.
func (s *Store) Quota() QuotaStatus {
	st := s.fsm.Stats()
	return QuotaStatus{
		Keys: int64(st.Keys), MaxKeys: s.cfg.MaxKeys,
		DataBytes: st.KeyBytes + st.ValueBytes, MaxData: s.cfg.MaxDataBytes,
	}
}

// checkQuota refuses, with ErrQuotaExceeded, a write that would add a key
// while the keys quota is reached or grow the data past the data quota.
// Deletes, touches and writes that do not grow the data always pass, and so
// does an idempotent retry the dedup table will answer (it writes nothing).
// now is the time the command will be stamped with.
func (s *Store) checkQuota(req writeRequest, now int64) error {
	if s.cfg.MaxKeys == 0 && s.cfg.MaxDataBytes == 0 {
		return nil
	}
	ops := []writeRequest{req}
	if req.op == fsm.OpTxn {
		ops = req.txn.ops // a transaction counts what all its writes add
	}
	sizes := make([]int64, len(ops))
	var maxGrowth, maxAdded int64
	for i, op := range ops {
		switch op.op {
		case fsm.OpSet:
			sizes[i] = int64(len(op.key) + len(op.value))
		case fsm.OpIncr:
			sizes[i] = int64(len(op.key) + maxIncrBytes)
		default:
			continue
		}
		maxGrowth += sizes[i]
		maxAdded++
	}
	if maxAdded == 0 {
		return nil
	}
	q := s.Quota()
	if (q.MaxKeys == 0 || q.Keys+maxAdded <= q.MaxKeys) && (q.MaxData == 0 || q.DataBytes+maxGrowth <= q.MaxData) {
		return nil // fits even as new keys: the common case costs one read lock
	}
	var growth, added int64
	for i, op := range ops {
		if sizes[i] == 0 {
			continue
		}
		oldSize, stored := s.fsm.Footprint(op.key)
		growth += sizes[i] - oldSize
		if !stored {
			added++
		}
	}
	if added == 0 && growth <= 0 {
		return nil
	}
	var err error
	var limit string
	switch {
	case added > 0 && q.MaxKeys > 0 && q.Keys+added > q.MaxKeys:
		limit = "keys"
		err = fmt.Errorf("%w: %d keys stored, the limit is %d (--max-keys); delete keys, let them expire, or raise the limit",
			ErrQuotaExceeded, q.Keys, q.MaxKeys)
	case q.MaxData > 0 && q.DataBytes+growth > q.MaxData:
		limit = "data_bytes"
		err = fmt.Errorf("%w: %d bytes of keys and values stored, this write adds %d, the limit is %d (--max-data-bytes); delete keys, let them expire, or raise the limit",
			ErrQuotaExceeded, q.DataBytes, growth, q.MaxData)
	default:
		return nil
	}
	if s.fsm.AnsweredFromDedup(req.op, req.idemKey, req.fingerprint, now) {
		return nil
	}
	s.metrics.quotaExceeded.WithLabelValues(limit).Inc()
	return err
}
