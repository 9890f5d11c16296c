package fsm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/tidwall/btree"
)

// FSM is the replicated key-value state. It implements raft.FSM and
// raft.BatchingFSM.
//
// Contract with raft: Apply, ApplyBatch, Snapshot and Restore are called from a
// single goroutine and never concurrently with each other; FSMSnapshot.Persist
// runs concurrently with later applies. Everything Apply does is a function of
// the log alone.
type FSM struct {
	// mu guards data and expiry (the pointers and the indexes behind them).
	// Writers (apply, restore's swap, snapshot's Copy) hold it exclusively;
	// readers hold it shared. The trees are built with NoLocks: mu is their lock.
	mu     sync.RWMutex
	data   *btree.BTreeG[item]
	expiry *expiryIndex
	// idem is the replicated dedup table of idempotent commands, by key, and
	// idemAge the same entries ordered by (createdAt, key) for pruning. Both are
	// guarded by mu like the data trees. See idempotency.go.
	idem    *btree.BTreeG[idemEntry]
	idemAge *btree.BTreeG[idemAgeKey]
	// idemBytes is the accounted size of idem (IdempotencyEntryBytes summed),
	// kept by every change to it; a function of the entries, so deterministic.
	idemBytes int64
	// lastNow is the command time of the last command applied: the floor of
	// every later command's time (see advanceTime). Replicated state, carried
	// in snapshots; written only with mu held for writing, read lock-free by
	// LastNow (the write and read paths call it for every request).
	lastNow atomic.Int64
	// staging is the online restore in progress, guarded by mu (restore.go).
	staging restoreStaging
	// nodes maps raft server IDs to their HTTP API addresses (nodes.go),
	// guarded by mu. Small: one entry per server.
	nodes map[string]string
	// clusterID is the cluster's id once recorded (cluster.go), guarded by mu.
	clusterID string
	// stats are running totals for monitoring, guarded by mu (stats.go).
	stats stats

	// applied is the index of the last log processed. It is stored after the
	// state it describes is in place and mu is released, so a reader that sees
	// index i and then takes mu sees every effect of the logs up to i.
	applied atomic.Uint64

	// waitMu guards waitCh: a channel closed (and dropped) each time applied
	// advances, created lazily by the first waiter. It lets WaitApplied block
	// without polling, and costs appliers nothing beyond one uncontended lock
	// per batch when nobody waits.
	waitMu sync.Mutex
	waitCh chan struct{}

	// observer receives the changes applied (change.go); changes collects
	// them under mu until the apply call publishes them. Both are used only
	// on raft's FSM goroutine.
	observer ChangeObserver
	changes  []Change
}

// treeOptions: the FSM's RWMutex serialises access, so the trees' own locks
// would only add cost.
var treeOptions = btree.Options{NoLocks: true}

func newDataTree() *btree.BTreeG[item] {
	return btree.NewBTreeGOptions(itemLess, treeOptions)
}

// New returns an empty FSM with applied index 0.
func New() *FSM {
	return &FSM{data: newDataTree(), expiry: newExpiryIndex(), idem: newIdemTree(), idemAge: newIdemAgeTree(), nodes: map[string]string{}}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one committed log. A raft.LogCommand returns one of SetResult
// (set, touch), DeleteResult, IncrResult, DeletePrefixResult, ExpireResult,
// BarrierResult, NodeAddrResult or TxnResult; any other log type returns nil.
// Either way the applied index becomes l.Index.
//
// A LogCommand that does not decode panics: the entry is committed, so skipping
// it would make this replica diverge from the others.
func (f *FSM) Apply(l *raft.Log) interface{} {
	var cmd Command
	if l.Type == raft.LogCommand {
		cmd = mustDecode(l)
	}
	f.mu.Lock()
	resp := f.applyLocked(l, &cmd)
	f.mu.Unlock()
	f.publish(l.Index)
	return resp
}

// ApplyBatch applies logs in order and returns one response per log, as Apply
// would. The whole batch is decoded before the write lock is taken (so an
// undecodable entry panics before any of the batch is applied, and allocation
// happens outside the lock), then applied under a single lock acquisition.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	cmds := make([]Command, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			cmds[i] = mustDecode(l)
		}
	}
	resps := make([]interface{}, len(logs))
	f.mu.Lock()
	for i, l := range logs {
		resps[i] = f.applyLocked(l, &cmds[i])
	}
	f.mu.Unlock()
	f.publish(logs[len(logs)-1].Index)
	return resps
}

func mustDecode(l *raft.Log) Command {
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: cannot apply committed log entry at index %d (term %d): %v; "+
			"refusing to continue, this replica would diverge", l.Index, l.Term, err))
	}
	return cmd
}

// applyLocked applies one log; f.mu must be held for writing. cmd is the decoded
// command for a LogCommand and ignored otherwise.
//
// Every command first prunes aged idempotency entries (bounded work, judged at
// cmd.Now). A command with an idempotency key is then answered from the dedup
// table when its key is recorded within the window: the recorded result when
// the fingerprint matches, StatusIdempotencyKeyReused when it does not; only
// otherwise is it applied, and its result recorded.
func (f *FSM) applyLocked(l *raft.Log, cmd *Command) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	if cmd.Op == OpBatch {
		res := BatchResult{Results: make([]interface{}, len(cmd.Batch))}
		for i := range cmd.Batch {
			res.Results[i] = f.applyCommand(l.Index, &cmd.Batch[i])
		}
		return res
	}
	return f.applyCommand(l.Index, cmd)
}

// applyCommand applies one command (not a batch) at log index; see applyLocked.
func (f *FSM) applyCommand(index uint64, cmd *Command) interface{} {
	f.advanceTime(cmd)
	f.pruneIdem(cmd.Now)
	if cmd.Op == OpDeletePrefixChunk && cmd.Bound != 0 {
		return f.continueDeletePrefix(index, cmd) // updates its own dedup record
	}
	if cmd.IdemKey != "" {
		if res, ok := f.lookupIdem(cmd); ok {
			if cmd.Op == OpDeletePrefixChunk {
				return replayedDeletePrefix(res)
			}
			return res
		}
	}
	res := f.applyOp(index, cmd)
	if cmd.IdemKey != "" {
		f.recordIdem(cmd, res)
	}
	return res
}

// advanceTime keeps command time from running backwards. A command stamped
// before the last applied command's time (a new leader whose clock is behind,
// a wall clock stepped back, a proposal that waited behind later ones) is
// applied as if stamped at that time: its Now becomes lastNow for every
// judgement (liveness, conditions, expire, the dedup window), and an absolute
// expiry it carries (set, touch, incr) moves forward by the same amount, since
// the proposer computed it as its Now plus the TTL. So a slow clock can
// neither bring an expired key back, nor shorten the dedup window, nor stamp a
// TTL shorter than asked. Every replica applies the same log, so every replica
// computes the same lastNow.
func (f *FSM) advanceTime(cmd *Command) {
	last := f.lastNow.Load()
	if cmd.Now < last {
		behind := last - cmd.Now
		if behind < 0 { // overflowed: only from absurd stamps; saturate
			behind = math.MaxInt64
		}
		cmd.Now = last
		switch cmd.Op {
		case OpSet, OpTouch, OpIncr:
			if cmd.ExpiresAt != 0 {
				cmd.ExpiresAt = addSaturating(cmd.ExpiresAt, behind)
			}
		case OpTxn:
			for i := range cmd.Ops {
				if op := &cmd.Ops[i]; op.ExpiresAt != 0 {
					op.ExpiresAt = addSaturating(op.ExpiresAt, behind)
				}
			}
		}
	}
	f.lastNow.Store(cmd.Now)
}

// addSaturating returns a+b for b > 0, or math.MaxInt64 when that overflows.
func addSaturating(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// LastNow returns the command time (Unix ms) of the last applied command: no
// later command is judged at an earlier time. A proposer stamps at least this
// (store), and readers judge expiry at no earlier time. Safe from any goroutine.
func (f *FSM) LastNow() int64 { return f.lastNow.Load() }

func (f *FSM) applyOp(index uint64, cmd *Command) interface{} {
	switch cmd.Op {
	case OpSet:
		return f.set(index, cmd)
	case OpDelete:
		return f.delete(index, cmd)
	case OpExpire:
		return f.expire(index, cmd)
	case OpBarrier:
		return BarrierResult{}
	case OpTouch:
		return f.touch(index, cmd)
	case OpIncr:
		return f.incr(index, cmd)
	case OpDeletePrefix:
		return f.deletePrefix(index, cmd)
	case OpDeletePrefixChunk:
		return f.firstDeletePrefixChunk(index, cmd)
	case OpRestoreChunk:
		return f.restoreChunk(cmd)
	case OpRestoreCommit:
		return f.restoreCommit(index, cmd)
	case OpRestoreAbort:
		return f.restoreAbort(cmd)
	case OpNodeAddr:
		return f.setNodeAddr(cmd)
	case OpClusterID:
		return f.setClusterID(cmd)
	case OpTxn:
		return f.txn(index, cmd)
	}
	// Decode only returns known ops; reaching here is a programming error.
	panic(fmt.Sprintf("fsm: log %d: decoded command has unhandled op %s", index, cmd.Op))
}

// live returns the entry at key if it exists and is not expired at now.
func (f *FSM) live(key string, now int64) (item, bool) {
	cur, ok := f.data.Get(probe(key))
	if !ok || cur.Expired(now) {
		return item{}, false
	}
	return cur, true
}

// checkCond evaluates cmd's precondition against the key's state at cmd.Now.
// current is the live revision (0 when absent), reported with a failure.
func checkCond(cmd *Command, cur item, live bool) (st Status, current uint64) {
	if live {
		current = cur.Revision
	}
	switch cmd.Cond {
	case CondIfMatch:
		if !live || cur.Revision != cmd.CondVersion {
			return StatusVersionMismatch, current
		}
	case CondIfAbsent:
		if live {
			return StatusAlreadyExists, current
		}
	}
	return StatusOK, current
}

// put stores value at key with revision index and expiry exp, keeping the
// expiry index in step, and records a ChangeSet. It returns the replaced item,
// if any.
func (f *FSM) put(index uint64, key string, value []byte, exp int64) (prev item, replaced bool) {
	it := newItem(key, value, index, exp)
	prev, replaced = f.data.Set(it)
	f.emit(Change{Type: ChangeSet, Key: it.key(), Value: it.value(), Version: index, ExpiresAt: exp, Index: index})
	f.stats.valueBytes += int64(len(value) - len(prev.value()))
	if !replaced {
		f.stats.keyBytes += int64(len(key))
	}
	if replaced && prev.ExpiresAt != 0 {
		f.expiry.Delete(expiryKey{at: prev.ExpiresAt, key: prev.key()})
	}
	if exp != 0 {
		f.expiry.Set(expiryKey{at: exp, key: key})
	}
	return prev, replaced
}

// remove deletes key from both indexes by a delete at log index, and
// reports the removed item.
func (f *FSM) remove(index uint64, key string) (item, bool) {
	return f.removeAs(index, key, ChangeDelete)
}

// removeAs deletes key from both indexes and, if it was present, records a
// change of type t (ChangeDelete or ChangeExpire) at log index. It reports
// the removed item.
func (f *FSM) removeAs(index uint64, key string, t ChangeType) (item, bool) {
	return f.removeHinted(index, key, t, nil)
}

// removeHinted is removeAs with a path hint for the primary tree: a caller
// that has just looked the key up with the same hint finds its path again
// without a search.
func (f *FSM) removeHinted(index uint64, key string, t ChangeType, hint *btree.PathHint) (item, bool) {
	prev, found := f.data.DeleteHint(probe(key), hint)
	if !found {
		return prev, false
	}
	f.stats.valueBytes -= int64(len(prev.value()))
	f.stats.keyBytes -= int64(len(prev.key()))
	if prev.ExpiresAt != 0 {
		f.expiry.Delete(expiryKey{at: prev.ExpiresAt, key: prev.key()})
	}
	if f.observer != nil {
		// The change outlives the entry (watch history): a copy of the key,
		// so it does not keep the removed value's bytes, which share one
		// allocation with the key, alive for as long.
		f.emit(Change{Type: t, Key: strings.Clone(prev.key()), Version: index, ExpiresAt: prev.ExpiresAt, Index: index})
	}
	return prev, true
}

func (f *FSM) set(index uint64, cmd *Command) SetResult {
	cur, live := f.live(cmd.Key, cmd.Now)
	if st, current := checkCond(cmd, cur, live); st != StatusOK {
		return SetResult{Status: st, Current: current}
	}
	exp := cmd.ExpiresAt
	if cmd.KeepTTL {
		exp = 0
		if live {
			exp = cur.ExpiresAt
		}
	}
	f.put(index, cmd.Key, cmd.Value, exp)
	return SetResult{Created: !live, Revision: index, ExpiresAt: exp}
}

func (f *FSM) delete(index uint64, cmd *Command) DeleteResult {
	if cmd.Cond != CondNone {
		cur, live := f.live(cmd.Key, cmd.Now)
		if st, current := checkCond(cmd, cur, live); st != StatusOK {
			return DeleteResult{Status: st, Current: current}
		}
	}
	prev, found := f.remove(index, cmd.Key)
	return DeleteResult{Deleted: found && !prev.Expired(cmd.Now), Revision: index}
}

// touch replaces the expiry of a live key, keeping its value; the key gets a
// new revision.
func (f *FSM) touch(index uint64, cmd *Command) SetResult {
	cur, live := f.live(cmd.Key, cmd.Now)
	if !live {
		return SetResult{Status: StatusNotFound}
	}
	if st, current := checkCond(cmd, cur, live); st != StatusOK {
		return SetResult{Status: st, Current: current}
	}
	f.put(index, cmd.Key, cur.value(), cmd.ExpiresAt)
	return SetResult{Revision: index, ExpiresAt: cmd.ExpiresAt}
}

// incr adds cmd.By to a live integer value, keeping its expiry, or creates the
// key holding cmd.By with expiry cmd.ExpiresAt.
func (f *FSM) incr(index uint64, cmd *Command) IncrResult {
	cur, live := f.live(cmd.Key, cmd.Now)
	if st, current := checkCond(cmd, cur, live); st != StatusOK {
		return IncrResult{Status: st, Current: current}
	}
	n, exp := cmd.By, cmd.ExpiresAt
	if live {
		old, ok := parseInt64(cur.value())
		if !ok {
			return IncrResult{Status: StatusNotAnInteger, Current: cur.Revision}
		}
		sum := old + cmd.By
		if (cmd.By > 0 && sum < old) || (cmd.By < 0 && sum > old) {
			return IncrResult{Status: StatusOverflow, Current: cur.Revision}
		}
		n, exp = sum, cur.ExpiresAt
	}
	f.put(index, cmd.Key, strconv.AppendInt(nil, n, 10), exp)
	return IncrResult{Created: !live, Value: n, Revision: index, ExpiresAt: exp}
}

// parseInt64 parses b as JSON integer text, -?(0|[1-9][0-9]*), within int64:
// no fraction, exponent, sign "+", leading zeros or surrounding space.
func parseInt64(b []byte) (int64, bool) {
	s := string(b)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// deletePrefix removes every entry whose key starts with cmd.Key, counting the
// live ones. It costs time proportional to the number of matching entries.
func (f *FSM) deletePrefix(index uint64, cmd *Command) DeletePrefixResult {
	var doomed []item
	f.data.Ascend(probe(cmd.Key), func(it item) bool {
		if !strings.HasPrefix(it.key(), cmd.Key) {
			return false
		}
		doomed = append(doomed, it)
		return true
	})
	n := 0
	for _, it := range doomed {
		f.remove(index, it.key())
		if !it.Expired(cmd.Now) {
			n++
		}
	}
	return DeletePrefixResult{Deleted: n, Revision: index}
}

// expire removes each item whose entry still has the proposed revision and is
// expired at the proposer's clock. Both conditions are needed: the revision check
// makes a proposal that raced with a re-set harmless, and the time check makes a
// proposal from a leader with a wrong clock (or a forged item list) harmless.
func (f *FSM) expire(index uint64, cmd *Command) ExpireResult {
	n := 0
	// The items come in expiry order, not key order: the hint only carries
	// each lookup's path to the delete that follows it (one tree search per
	// item instead of two).
	var hint btree.PathHint
	for _, it := range cmd.Items {
		cur, ok := f.data.GetHint(probe(it.Key), &hint)
		if !ok || cur.Revision != it.Revision || !cur.Expired(cmd.Now) {
			continue
		}
		f.removeHinted(index, it.Key, ChangeExpire, &hint)
		n++
	}
	f.stats.expired += uint64(n)
	return ExpireResult{Expired: n}
}

// advance publishes index as the applied index and wakes every waiter.
func (f *FSM) advance(index uint64) {
	f.applied.Store(index)
	f.waitMu.Lock()
	if f.waitCh != nil {
		close(f.waitCh)
		f.waitCh = nil
	}
	f.waitMu.Unlock()
}
