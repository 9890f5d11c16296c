package fsm

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"unsafe"

	"github.com/hashicorp/raft"
)

// mirror rebuilds the FSM's entries from its changes alone, as a watcher's
// cache would, and records what it was given.
type mirror struct {
	t       *testing.T
	f       *FSM
	entries map[string]Entry
	last    uint64 // index of the last Applied call
	byType  map[ChangeType]int
	all     []Change
}

func newMirror(t *testing.T, f *FSM) *mirror {
	m := &mirror{t: t, f: f, entries: map[string]Entry{}, byType: map[ChangeType]int{}}
	f.SetChangeObserver(m)
	return m
}

func (m *mirror) Applied(changes []Change, index uint64) {
	if index < m.last {
		m.t.Fatalf("Applied(index %d) after index %d", index, m.last)
	}
	for _, c := range changes {
		if (c.Index <= m.last && c.Type != ChangeReset) || c.Index > index {
			m.t.Fatalf("change %+v outside (%d, %d]", c, m.last, index)
		}
		m.byType[c.Type]++
		m.all = append(m.all, c)
		switch c.Type {
		case ChangeSet:
			if c.Version != c.Index {
				m.t.Fatalf("set %+v: version is not the index", c)
			}
			m.entries[c.Key] = Entry{Value: append([]byte(nil), c.Value...), Revision: c.Version, ExpiresAt: c.ExpiresAt}
		case ChangeDelete, ChangeExpire:
			if _, ok := m.entries[c.Key]; !ok {
				m.t.Fatalf("%s of %q, which the changes never created", c.Type, c.Key)
			}
			delete(m.entries, c.Key)
		case ChangeReset:
			// A reset is published with the state in place: read it all again.
			m.entries = map[string]Entry{}
			m.f.mu.RLock()
			m.f.data.Scan(func(it item) bool {
				m.entries[it.key()] = Entry{Value: append([]byte(nil), it.value()...), Revision: it.Revision, ExpiresAt: it.ExpiresAt}
				return true
			})
			m.f.mu.RUnlock()
		default:
			m.t.Fatalf("change with unknown type: %+v", c)
		}
	}
	m.last = index
	m.check()
}

// check compares the mirror with every stored entry, expired ones included
// (an entry stays until an expire command removes it).
func (m *mirror) check() {
	m.t.Helper()
	got := map[string]Entry{}
	m.f.mu.RLock()
	m.f.data.Scan(func(it item) bool {
		got[it.key()] = Entry{Value: append([]byte(nil), it.value()...), Revision: it.Revision, ExpiresAt: it.ExpiresAt}
		return true
	})
	m.f.mu.RUnlock()
	if len(got) == 0 && len(m.entries) == 0 {
		return
	}
	if !reflect.DeepEqual(got, m.entries) {
		m.t.Fatalf("after index %d the changes describe %d entries, the FSM holds %d (first difference: %s)",
			m.last, len(m.entries), len(got), firstDiff(got, m.entries))
	}
}

func firstDiff(a, b map[string]Entry) string {
	for k, v := range a {
		if w, ok := b[k]; !ok || !reflect.DeepEqual(v, w) {
			return fmt.Sprintf("%q: FSM %+v, changes %+v (present %v)", k, v, w, ok)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return fmt.Sprintf("%q only in the changes", k)
		}
	}
	return "none"
}

// TestChangesMirrorState: the random logs of the determinism test (sets with
// and without TTLs, conditional writes, incr, touch, deletes, expires with
// stale items, bulk-delete chunks, batches, configuration entries), applied
// singly and in batches: after every apply call, the entries rebuilt from the
// changes alone equal the FSM's, and the change stream is the same either way.
func TestChangesMirrorState(t *testing.T) {
	total := map[ChangeType]int{}
	t.Cleanup(func() {
		for _, typ := range []ChangeType{ChangeSet, ChangeDelete, ChangeExpire} {
			if total[typ] == 0 {
				t.Errorf("the logs produced no %s change: the test proves little", typ)
			}
		}
	})
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			logs, _, _ := genLog(seed, 3000)
			single := New()
			ms := newMirror(t, single)
			for _, l := range logs {
				single.Apply(l)
			}
			batched := New()
			mb := newMirror(t, batched)
			r := rand.New(rand.NewPCG(seed, 9))
			for rest := logs; len(rest) > 0; {
				n := min(1+r.IntN(50), len(rest))
				batched.ApplyBatch(rest[:n])
				rest = rest[n:]
			}
			if !reflect.DeepEqual(ms.all, mb.all) {
				t.Fatalf("Apply and ApplyBatch produced different changes (%d vs %d)", len(ms.all), len(mb.all))
			}
			for typ, n := range ms.byType {
				total[typ] += n
			}
			t.Logf("changes: %v", ms.byType)
			if h1, h2 := stateOf(single), stateOf(withoutObserver(logs)); h1 != h2 {
				t.Fatalf("an observer changed the state: %+v vs %+v", h1, h2)
			}
		})
	}
}

func withoutObserver(logs []*raft.Log) *FSM {
	f := New()
	f.ApplyBatch(logs)
	return f
}

// TestChangeKinds: each kind of mutation yields exactly the change a watcher
// needs, and nothing else does.
func TestChangeKinds(t *testing.T) {
	f := New()
	m := newMirror(t, f)
	const now = 1_000
	step := func(idx uint64, c Command, want ...Change) {
		t.Helper()
		before := len(m.all)
		f.Apply(cmdLog(idx, c))
		got := m.all[before:]
		if len(got) == 0 && len(want) == 0 {
			return
		}
		for i := range got {
			got[i].Value = append([]byte{}, got[i].Value...)
		}
		for i := range want {
			if want[i].Value == nil && want[i].Type == ChangeSet {
				want[i].Value = []byte{}
			}
			if want[i].Value != nil {
				want[i].Value = append([]byte{}, want[i].Value...)
			}
		}
		for i := range got {
			if got[i].Type != ChangeSet {
				got[i].Value = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("log %d (%s): changes\n got  %+v\n want %+v", idx, c.Op, got, want)
		}
	}
	step(1, setCmd("a", `1`, 0, now), Change{Type: ChangeSet, Key: "a", Value: []byte(`1`), Version: 1, Index: 1})
	step(2, setCmd("b", `"x"`, now+10, now), Change{Type: ChangeSet, Key: "b", Value: []byte(`"x"`), Version: 2, ExpiresAt: now + 10, Index: 2})
	step(3, Command{Op: OpIncr, Key: "a", By: 2, Now: now}, Change{Type: ChangeSet, Key: "a", Value: []byte(`3`), Version: 3, Index: 3})
	step(4, Command{Op: OpTouch, Key: "a", ExpiresAt: now + 50, Now: now}, Change{Type: ChangeSet, Key: "a", Value: []byte(`3`), Version: 4, ExpiresAt: now + 50, Index: 4})
	step(5, Command{Op: OpSet, Key: "a", Value: []byte(`4`), Cond: CondIfMatch, CondVersion: 1, Now: now}) // version mismatch: nothing
	step(6, deleteCmd("missing", now))                                                                     // nothing to delete
	step(7, expireCmd(now+20, ExpireItem{Key: "b", Revision: 1}))                                          // stale revision
	step(8, expireCmd(now+20, ExpireItem{Key: "b", Revision: 2}), Change{Type: ChangeExpire, Key: "b", Version: 8, ExpiresAt: now + 10, Index: 8})
	step(9, deleteCmd("a", now+20), Change{Type: ChangeDelete, Key: "a", Version: 9, ExpiresAt: now + 50, Index: 9})
	for i, k := range []string{"p/1", "p/2", "p/3", "q"} {
		step(uint64(10+i), setCmd(k, `0`, 0, now+20), Change{Type: ChangeSet, Key: k, Value: []byte(`0`), Version: uint64(10 + i), Index: uint64(10 + i)})
	}
	step(14, Command{Op: OpDeletePrefixChunk, Key: "p/", Limit: 2, Now: now + 20},
		Change{Type: ChangeDelete, Key: "p/1", Version: 14, Index: 14},
		Change{Type: ChangeDelete, Key: "p/2", Version: 14, Index: 14})
	step(15, Command{Op: OpDeletePrefixChunk, Key: "p/", Limit: 2, Bound: 14, After: "p/2", Now: now + 20},
		Change{Type: ChangeDelete, Key: "p/3", Version: 15, Index: 15})
	step(16, Command{Op: OpBatch, Now: now + 20, Batch: []Command{setCmd("x", `1`, 0, now+20), deleteCmd("q", now+20)}},
		Change{Type: ChangeSet, Key: "x", Value: []byte(`1`), Version: 16, Index: 16},
		Change{Type: ChangeDelete, Key: "q", Version: 16, Index: 16})
	step(17, Command{Op: OpBarrier, Now: now + 20})

	// An online restore and a snapshot install each yield one reset.
	body := snapshotBody(t, f)
	step(18, chunkCmd(7, 0, body))
	step(19, commitCmd(7, 1), Change{Type: ChangeReset, Version: 19, Index: 19})
	snap := persist(t, f)
	before := len(m.all)
	if err := restoreBytes(f, snap); err != nil {
		t.Fatal(err)
	}
	if got := m.all[before:]; len(got) != 1 || got[0].Type != ChangeReset || got[0].Index != 19 {
		t.Fatalf("Restore: changes %+v, want one reset at 19", got)
	}
}

// TestTxnChanges: a transaction yields one change per key it changes, all
// at its own index, in its operations' order (a get changes nothing); a
// failed transaction yields none.
func TestTxnChanges(t *testing.T) {
	f := New()
	m := newMirror(t, f)
	apply(t, f, 1, setCmd("a", `1`, 0, 10))
	apply(t, f, 2, setCmd("gone", `1`, 0, 10))
	before := len(m.all)
	apply(t, f, 3, txnCmd(20, nil,
		Command{Op: OpSet, Key: "b", Value: []byte(`"x"`)},
		Command{Op: OpIncr, Key: "a", By: 2},
		Command{Op: OpTxnGet, Key: "c"},
		Command{Op: OpDelete, Key: "gone"}))
	if got := describeChanges(m.all[before:]); got != "set b@3 set a@3 delete gone@3 " {
		t.Fatalf("txn changes: %s", got)
	}
	before = len(m.all)
	apply(t, f, 4, txnCmd(20, []TxnCheck{{Kind: TxnCheckVersion, Key: "a", Version: 1}},
		Command{Op: OpSet, Key: "c", Value: []byte(`1`)}))
	if got := m.all[before:]; len(got) != 0 {
		t.Fatalf("a failed txn produced changes: %s", describeChanges(got))
	}
}

func describeChanges(cs []Change) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("%s %s@%d ", c.Type, c.Key, c.Index)
	}
	return s
}

// TestRemovalChangeHoldsOnlyTheKey: a delete's or an expiry's change is kept
// by the watch history after the entry is gone; its key must be a copy, not
// a view of the entry's key-and-value allocation, which it would keep alive.
func TestRemovalChangeHoldsOnlyTheKey(t *testing.T) {
	f := New()
	m := newMirror(t, f)
	f.Apply(cmdLog(1, Command{Op: OpSet, Key: "gone", Value: []byte(`"a long value"`), Now: 1, ExpiresAt: 5}))
	it, _ := f.data.Get(probe("gone"))
	f.Apply(cmdLog(2, Command{Op: OpExpire, Now: 10, Items: []ExpireItem{{Key: "gone", Revision: 1}}}))
	last := m.all[len(m.all)-1]
	if last.Type != ChangeExpire || last.Key != "gone" {
		t.Fatalf("last change %+v, want the expiry of gone", last)
	}
	if unsafe.StringData(last.Key) == unsafe.StringData(it.kv) {
		t.Fatal("the expiry's change shares the removed entry's allocation")
	}
}
