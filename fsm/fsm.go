package fsm

import (
	"fmt"
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
	// mu guards data and expiry (the pointers and the trees behind them).
	// Writers (apply, restore's swap, snapshot's Copy) hold it exclusively;
	// readers hold it shared. The trees are built with NoLocks: mu is their lock.
	mu     sync.RWMutex
	data   *btree.BTreeG[item]
	expiry *btree.BTreeG[expiryKey]

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
}

// treeOptions: the FSM's RWMutex serialises access, so the trees' own locks
// would only add cost.
var treeOptions = btree.Options{NoLocks: true}

func newDataTree() *btree.BTreeG[item] {
	return btree.NewBTreeGOptions(itemLess, treeOptions)
}

func newExpiryTree() *btree.BTreeG[expiryKey] {
	return btree.NewBTreeGOptions(expiryLess, treeOptions)
}

// New returns an empty FSM with applied index 0.
func New() *FSM {
	return &FSM{data: newDataTree(), expiry: newExpiryTree()}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one committed log. A raft.LogCommand returns one of SetResult,
// DeleteResult, ExpireResult or BarrierResult; any other log type returns nil.
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
	f.advance(l.Index)
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
	f.advance(logs[len(logs)-1].Index)
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
func (f *FSM) applyLocked(l *raft.Log, cmd *Command) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	switch cmd.Op {
	case OpSet:
		return f.set(l.Index, cmd)
	case OpDelete:
		return f.delete(l.Index, cmd)
	case OpExpire:
		return f.expire(cmd)
	case OpBarrier:
		return BarrierResult{}
	}
	// Decode only returns known ops; reaching here is a programming error.
	panic(fmt.Sprintf("fsm: log %d: decoded command has unhandled op %s", l.Index, cmd.Op))
}

func (f *FSM) set(index uint64, cmd *Command) SetResult {
	next := item{key: cmd.Key, Entry: Entry{Value: cmd.Value, Revision: index, ExpiresAt: cmd.ExpiresAt}}
	prev, replaced := f.data.Set(next)
	if replaced && prev.ExpiresAt != 0 {
		f.expiry.Delete(expiryKey{at: prev.ExpiresAt, key: prev.key})
	}
	if cmd.ExpiresAt != 0 {
		f.expiry.Set(expiryKey{at: cmd.ExpiresAt, key: cmd.Key, rev: index})
	}
	return SetResult{
		Created:   !replaced || prev.Expired(cmd.Now),
		Revision:  index,
		ExpiresAt: cmd.ExpiresAt,
	}
}

func (f *FSM) delete(index uint64, cmd *Command) DeleteResult {
	prev, found := f.data.Delete(item{key: cmd.Key})
	if found && prev.ExpiresAt != 0 {
		f.expiry.Delete(expiryKey{at: prev.ExpiresAt, key: prev.key})
	}
	return DeleteResult{Deleted: found && !prev.Expired(cmd.Now), Revision: index}
}

// expire removes each item whose entry still has the proposed revision and is
// expired at the proposer's clock. Both conditions are needed: the revision check
// makes a proposal that raced with a re-set harmless, and the time check makes a
// proposal from a leader with a wrong clock (or a forged item list) harmless.
func (f *FSM) expire(cmd *Command) ExpireResult {
	n := 0
	for _, it := range cmd.Items {
		cur, ok := f.data.Get(item{key: it.Key})
		if !ok || cur.Revision != it.Revision || !cur.Expired(cmd.Now) {
			continue
		}
		f.data.Delete(item{key: it.Key})
		f.expiry.Delete(expiryKey{at: cur.ExpiresAt, key: it.Key})
		n++
	}
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
