package fsm

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// model is a deliberately naive reference implementation of the FSM's
// semantics: a map and linear scans.
type model map[string]Entry

// idemRecord is the model's dedup entry; the model never prunes, it only
// ignores aged entries, which must be indistinguishable in every response.
type idemRec struct {
	fp  [FingerprintSize]byte
	res interface{}
	at  int64
}

func (m model) applyIdem(table map[string]idemRec, index uint64, c Command) interface{} {
	if c.Op == OpDeletePrefixChunk && c.Bound != 0 {
		return m.continueChunk(table, c)
	}
	if c.IdemKey != "" {
		if r, ok := table[c.IdemKey]; ok && !(c.Now-r.at >= IdempotencyWindowMs) {
			if r.fp == c.Fingerprint {
				if dr, ok := r.res.(DeletePrefixResult); ok && c.Op == OpDeletePrefixChunk && dr.Status == StatusOK {
					dr.Bound, dr.More, dr.Replayed, dr.Recorded, dr.Total = dr.Revision, true, true, true, dr.Deleted
					return dr
				}
				return r.res
			}
			return reusedResult(c.Op)
		}
	}
	res := m.apply(index, c)
	if c.IdemKey != "" {
		rec := res
		if dr, ok := res.(DeletePrefixResult); ok {
			rec = DeletePrefixResult{Status: dr.Status, Deleted: dr.Deleted, Revision: dr.Revision} // what the table encodes
		}
		table[c.IdemKey] = idemRec{c.Fingerprint, rec, c.Now}
	}
	return res
}

// chunk removes, as one bulk delete chunk, the model's entries below bound.
func (m model) chunk(c Command, bound uint64) DeletePrefixResult {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, c.Key) && (c.After == "" || k > c.After) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var r DeletePrefixResult
	var doomed []string
	visited := uint64(0)
	for _, k := range keys {
		if uint64(len(doomed)) == c.Limit || visited == c.Limit*chunkVisitFactor {
			r.More = true
			break
		}
		visited++
		r.Next = k
		if m[k].Revision < bound {
			doomed = append(doomed, k)
		}
	}
	for _, k := range doomed {
		if !m[k].Expired(c.Now) {
			r.Deleted++
		}
		delete(m, k)
	}
	if !r.More {
		r.Next = ""
	}
	return r
}

// continueChunk is a later chunk: it adds to the bulk delete's record.
func (m model) continueChunk(table map[string]idemRec, c Command) DeletePrefixResult {
	r := m.chunk(c, c.Bound)
	r.Revision, r.Bound = c.Bound, c.Bound
	if c.IdemKey == "" {
		return r
	}
	rec, ok := table[c.IdemKey]
	if !ok || rec.fp != c.Fingerprint || c.Now-rec.at >= IdempotencyWindowMs {
		return r
	}
	dr, isBulk := rec.res.(DeletePrefixResult)
	if !isBulk || dr.Status != StatusOK || dr.Revision != c.Bound {
		return r
	}
	dr.Deleted += r.Deleted
	rec.res = dr
	table[c.IdemKey] = rec
	r.Recorded, r.Total = true, dr.Deleted
	return r
}

// at is the model of monotonic command time: c as Apply judges it after
// commands up to *last. A command stamped before *last is applied at *last,
// and an expiry it carries moves forward by the same amount.
func at(last *int64, c Command) Command {
	if c.Now < *last {
		d := *last - c.Now
		c.Now = *last
		if (c.Op == OpSet || c.Op == OpTouch || c.Op == OpIncr) && c.ExpiresAt != 0 {
			c.ExpiresAt += d
		}
		if c.Op == OpTxn {
			c.Ops = slices.Clone(c.Ops)
			for i := range c.Ops {
				if c.Ops[i].ExpiresAt != 0 {
					c.Ops[i].ExpiresAt += d
				}
			}
		}
	}
	*last = c.Now
	return c
}

// cond returns the failure status for c against the key's state, if any.
func (m model) cond(c Command) (Status, uint64) {
	old, ok := m[c.Key]
	live := ok && !old.Expired(c.Now)
	var cur uint64
	if live {
		cur = old.Revision
	}
	if c.Cond == CondIfMatch && (!live || old.Revision != c.CondVersion) {
		return StatusVersionMismatch, cur
	}
	if c.Cond == CondIfAbsent && live {
		return StatusAlreadyExists, cur
	}
	return StatusOK, cur
}

func (m model) apply(index uint64, c Command) interface{} {
	old, ok := m[c.Key]
	live := ok && !old.Expired(c.Now)
	switch c.Op {
	case OpSet:
		if st, cur := m.cond(c); st != StatusOK {
			return SetResult{Status: st, Current: cur}
		}
		exp := c.ExpiresAt
		if c.KeepTTL {
			exp = 0
			if live {
				exp = old.ExpiresAt
			}
		}
		m[c.Key] = Entry{Value: c.Value, Revision: index, ExpiresAt: exp}
		return SetResult{Created: !live, Revision: index, ExpiresAt: exp}
	case OpDelete:
		if st, cur := m.cond(c); st != StatusOK {
			return DeleteResult{Status: st, Current: cur}
		}
		delete(m, c.Key)
		return DeleteResult{Deleted: live, Revision: index}
	case OpTouch:
		if !live {
			return SetResult{Status: StatusNotFound}
		}
		if st, cur := m.cond(c); st != StatusOK {
			return SetResult{Status: st, Current: cur}
		}
		m[c.Key] = Entry{Value: old.Value, Revision: index, ExpiresAt: c.ExpiresAt}
		return SetResult{Revision: index, ExpiresAt: c.ExpiresAt}
	case OpIncr:
		if st, cur := m.cond(c); st != StatusOK {
			return IncrResult{Status: st, Current: cur}
		}
		n, exp := big.NewInt(c.By), c.ExpiresAt
		if live {
			v, ok := new(big.Int).SetString(string(old.Value), 10)
			if !ok || !v.IsInt64() || strings.HasPrefix(string(old.Value), "+") || (len(old.Value) > 1 && old.Value[0] == '0') || strings.HasPrefix(string(old.Value), "-0") && len(old.Value) > 2 {
				return IncrResult{Status: StatusNotAnInteger, Current: old.Revision}
			}
			n.Add(n, v)
			if !n.IsInt64() {
				return IncrResult{Status: StatusOverflow, Current: old.Revision}
			}
			exp = old.ExpiresAt
		}
		m[c.Key] = Entry{Value: []byte(n.String()), Revision: index, ExpiresAt: exp}
		return IncrResult{Created: !live, Value: n.Int64(), Revision: index, ExpiresAt: exp}
	case OpDeletePrefix:
		n := 0
		for k, e := range m {
			if strings.HasPrefix(k, c.Key) {
				if !e.Expired(c.Now) {
					n++
				}
				delete(m, k)
			}
		}
		return DeletePrefixResult{Deleted: n, Revision: index}
	case OpDeletePrefixChunk: // a first chunk; later ones go through continueChunk
		r := m.chunk(c, index)
		r.Revision, r.Bound = index, index
		if c.IdemKey != "" {
			r.Recorded, r.Total = true, r.Deleted
		}
		return r
	case OpExpire:
		n := 0
		for _, it := range c.Items {
			if e, ok := m[it.Key]; ok && e.Revision == it.Revision && e.Expired(c.Now) {
				delete(m, it.Key)
				n++
			}
		}
		return ExpireResult{Expired: n}
	case OpBarrier:
		return BarrierResult{}
	case OpTxn:
		return m.txn(index, c)
	}
	panic("model: unknown op")
}

// txn is the model of a transaction: every check against the state, then
// the operations one by one on a copy of the model, kept only if every one
// of them succeeds.
func (m model) txn(index uint64, c Command) TxnResult {
	var failed []TxnFailedCheck
	for i, ch := range c.Checks {
		e, ok := m[ch.Key]
		live := ok && !e.Expired(c.Now)
		var cur uint64
		if live {
			cur = e.Revision
		}
		var holds bool
		switch ch.Kind {
		case TxnCheckVersion:
			holds = cur == ch.Version
		case TxnCheckExists:
			holds = live
		case TxnCheckAbsent:
			holds = !live
		case TxnCheckValue:
			holds = live && string(e.Value) == string(ch.Value)
		}
		if !holds {
			failed = append(failed, TxnFailedCheck{Position: i, Current: cur})
		}
	}
	if failed != nil {
		return TxnResult{Status: StatusTxnCheckFailed, FailedChecks: failed}
	}
	draft := maps.Clone(m)
	res := TxnResult{Results: make([]interface{}, len(c.Ops))}
	var read uint64
	for i, op := range c.Ops {
		op.Now = c.Now
		var cur uint64
		if e, ok := draft[op.Key]; ok && !e.Expired(c.Now) {
			cur = e.Revision
		}
		if op.Op == OpTxnGet {
			g := TxnGetResult{}
			if e, ok := draft[op.Key]; ok && !e.Expired(c.Now) {
				g = TxnGetResult{Found: true, Value: e.Value, Revision: e.Revision, ExpiresAt: e.ExpiresAt}
				read += uint64(len(e.Value))
			}
			if read > c.ReadBudget {
				return TxnResult{Status: StatusTxnOpFailed, FailedOp: i, OpStatus: StatusTxnReadTooLarge, OpCurrent: cur}
			}
			res.Results[i] = g
			continue
		}
		r := draft.apply(index, op)
		if st := Status(reflect.ValueOf(r).FieldByName("Status").Uint()); st != StatusOK {
			return TxnResult{Status: StatusTxnOpFailed, FailedOp: i, OpStatus: st, OpCurrent: cur}
		}
		res.Results[i] = r
	}
	clear(m)
	maps.Copy(m, draft)
	return res
}

// genTxn returns a random transaction over the model's keys: checks that
// mostly hold or mostly fail, and one to five operations on distinct keys.
func genTxn(r *rand.Rand, m model, key func() string, now int64, idx uint64) Command {
	c := Command{Op: OpTxn, Now: now, ReadBudget: 1 << 20}
	if r.IntN(10) == 0 {
		c.ReadBudget = uint64(r.IntN(8))
	}
	pick := func() string {
		if r.IntN(3) == 0 {
			return fmt.Sprintf("k%03d", r.IntN(5)) // the counters
		}
		return key()
	}
	for range r.IntN(4) {
		k := pick()
		e, ok := m[k]
		ch := TxnCheck{Key: k}
		switch r.IntN(4) {
		case 0:
			ch.Kind = TxnCheckVersion
			if ok && r.IntN(4) != 0 {
				ch.Version = e.Revision
			} else if r.IntN(2) == 0 {
				ch.Version = uint64(r.IntN(int(idx) + 1))
			}
		case 1:
			ch.Kind = TxnCheckExists
		case 2:
			ch.Kind = TxnCheckAbsent
		default:
			ch.Kind, ch.Value = TxnCheckValue, []byte("1")
			if ok && r.IntN(4) != 0 {
				ch.Value = e.Value
			}
		}
		c.Checks = append(c.Checks, ch)
	}
	used := map[string]bool{}
	exp := func() int64 {
		if r.IntN(2) == 0 {
			return 0
		}
		return now + int64(r.IntN(400)) - 50
	}
	for len(c.Ops) < 1+r.IntN(5) || !TxnWrites(c.Ops) {
		k := pick()
		if used[k] {
			continue
		}
		used[k] = true
		var op Command
		switch r.IntN(6) {
		case 0:
			op = Command{Op: OpSet, Key: k, Value: fmt.Appendf(nil, "%d", r.IntN(9)), ExpiresAt: exp()}
		case 1:
			op = Command{Op: OpSet, Key: k, Value: []byte(`"t"`), KeepTTL: true}
		case 2:
			op = Command{Op: OpDelete, Key: k}
		case 3:
			op = Command{Op: OpTouch, Key: k, ExpiresAt: exp()}
		case 4:
			op = Command{Op: OpIncr, Key: k, By: int64(r.IntN(7)) - 3, ExpiresAt: exp()}
			if r.IntN(10) == 0 {
				op.By = math.MaxInt64
			}
		default:
			op = Command{Op: OpTxnGet, Key: k}
		}
		c.Ops = append(c.Ops, op)
	}
	if r.IntN(4) == 0 {
		c.Ops = slices.DeleteFunc(c.Ops, func(op Command) bool { return op.Op == OpTxnGet })
		if len(c.Ops) > 0 {
			c.IdemKey = fmt.Sprintf("req-%d", r.IntN(40))
			c.Fingerprint[0] = byte(r.IntN(2))
		}
	}
	return c
}

func (m model) expired(now int64) []ExpireItem {
	var out []ExpireItem
	for k, e := range m {
		if e.Expired(now) {
			out = append(out, ExpireItem{k, e.Revision})
		}
	}
	slices.SortFunc(out, func(a, b ExpireItem) int {
		if d := m[a.Key].ExpiresAt - m[b.Key].ExpiresAt; d != 0 {
			if d < 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// genLog builds n random logs (sets, deletes, expires built from the model's
// view of expired entries plus stale and bogus items, barriers, and
// configuration entries) and the response each must produce.
func genLog(seed uint64, n int) (logs []*raft.Log, want []interface{}, final model) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := model{}
	table := map[string]idemRec{}
	now := int64(1_700_000_000_000)
	var last int64 // the model's command time: the latest Now applied
	key := func() string { return fmt.Sprintf("k%03d", r.IntN(200)) }
	for i := 1; i <= n; i++ {
		idx := uint64(i)
		now += int64(r.IntN(50)) - 10 // proposers' clocks are not monotonic
		if r.IntN(500) == 0 {
			now += IdempotencyWindowMs / 3 // let dedup entries age out
		}
		if r.IntN(300) == 0 {
			// A leader whose clock is minutes behind (or a wall clock stepped
			// back): Apply must judge its commands at the time already reached.
			now -= int64(r.IntN(IdempotencyWindowMs))
		}
		var c Command
		switch p := r.IntN(165); {
		case p >= 145:
			c = genTxn(r, m, key, now, idx)
			if len(c.Ops) == 0 {
				c = Command{Op: OpBarrier, Now: now}
			}
			logs = append(logs, cmdLog(idx, c))
			want = append(want, m.applyIdem(table, idx, at(&last, c)))
			continue
		case p >= 130:
			// A batch: independent writes to distinct keys at one index,
			// each answered as if it were its own command at that index.
			var ws []Command
			var res []interface{}
			used := map[string]bool{}
			for len(ws) < 2+r.IntN(4) {
				w := genV2Command(r, m, key, now+int64(r.IntN(5)), idx)
				if r.IntN(3) == 0 {
					w = Command{Op: OpSet, Key: key(), Value: fmt.Appendf(nil, "%d", r.IntN(9)), Now: now}
				}
				if !w.Batchable() || used[w.Key] {
					continue
				}
				if r.IntN(4) == 0 {
					w.IdemKey = fmt.Sprintf("req-%d", r.IntN(40))
				}
				used[w.Key] = true
				ws = append(ws, w)
				res = append(res, m.applyIdem(table, idx, at(&last, w)))
			}
			logs = append(logs, cmdLog(idx, Command{Op: OpBatch, Now: now, Batch: ws}))
			want = append(want, BatchResult{Results: res})
			continue
		case p >= 100:
			c = genV2Command(r, m, key, now, idx)
			if r.IntN(3) == 0 {
				c.IdemKey = fmt.Sprintf("req-%d", r.IntN(40))
				c.Fingerprint[0] = byte(r.IntN(2))
			}
			logs = append(logs, cmdLog(idx, c))
			want = append(want, m.applyIdem(table, idx, at(&last, c)))
			continue
		case p < 3:
			logs = append(logs, configLog(idx))
			want = append(want, nil)
			continue
		case p < 55:
			var exp int64
			if r.IntN(2) == 0 {
				exp = now + int64(r.IntN(400)) - 50
			}
			c = Command{Op: OpSet, Key: key(), Value: fmt.Appendf(nil, `{"n":%d}`, r.IntN(1000)), ExpiresAt: exp, Now: now}
		case p < 75:
			c = Command{Op: OpDelete, Key: key(), Now: now}
		case p < 95:
			items := m.expired(now + int64(r.IntN(200)) - 100)
			if len(items) > 8 {
				items = items[:8]
			}
			for range r.IntN(3) { // stale or bogus items must be harmless
				items = append(items, ExpireItem{key(), uint64(r.IntN(i + 1))})
			}
			c = Command{Op: OpExpire, Items: items, Now: now}
		default:
			c = Command{Op: OpBarrier, Now: now}
		}
		logs = append(logs, cmdLog(idx, c))
		want = append(want, m.applyIdem(table, idx, at(&last, c)))
	}
	return logs, want, m
}

// genV2Command returns a random command using the version 2 ops and fields.
func genV2Command(r *rand.Rand, m model, key func() string, now int64, idx uint64) Command {
	k := key()
	var ver uint64
	if e, ok := m[k]; ok && r.IntN(2) == 0 {
		ver = e.Revision
	} else {
		ver = uint64(r.IntN(int(idx) + 1))
	}
	exp := func() int64 {
		if r.IntN(2) == 0 {
			return 0
		}
		return now + int64(r.IntN(400)) - 50
	}
	var c Command
	switch r.IntN(8) {
	case 0:
		c = Command{Op: OpSet, Key: k, Value: []byte(fmt.Sprint(r.IntN(100) - 50)), ExpiresAt: exp(), Cond: CondIfMatch, CondVersion: ver}
	case 1:
		c = Command{Op: OpSet, Key: k, Value: []byte("1"), ExpiresAt: exp(), Cond: CondIfAbsent}
	case 2:
		c = Command{Op: OpSet, Key: k, Value: []byte(`"s"`), ExpiresAt: exp(), KeepTTL: true}
	case 3:
		c = Command{Op: OpDelete, Key: k, Cond: CondIfMatch, CondVersion: ver}
	case 4:
		c = Command{Op: OpTouch, Key: k, ExpiresAt: exp()}
		if r.IntN(2) == 0 {
			c.Cond, c.CondVersion = CondIfMatch, ver
		}
	case 5, 6:
		by := int64(r.IntN(10)) - 3
		switch r.IntN(8) {
		case 0:
			by = math.MaxInt64 - int64(r.IntN(3))
		case 1:
			by = math.MinInt64 + int64(r.IntN(3))
		}
		k = fmt.Sprintf("k%03d", r.IntN(5)) // few counters, so they grow and overflow
		c = Command{Op: OpIncr, Key: k, By: by, ExpiresAt: exp()}
	default:
		c = Command{Op: OpDeletePrefix, Key: k[:3+r.IntN(2)]}
		if r.IntN(2) == 0 {
			c.Op, c.Limit = OpDeletePrefixChunk, uint64(1+r.IntN(4))
			switch r.IntN(3) {
			case 0: // a later chunk bounded at an entry's own revision
				c.Bound = ver + 1 - uint64(r.IntN(2))
			case 1:
				c.Bound = uint64(1 + r.IntN(int(idx)))
			}
			if r.IntN(2) == 0 {
				c.After = k
			}
		}
	}
	c.Now = now
	return c
}

func TestDeterminism(t *testing.T) {
	seen := map[string]bool{}
	t.Cleanup(func() {
		// The generator must reach every outcome, or the test proves little.
		for st := StatusOK; st <= StatusTxnReadTooLarge; st++ {
			if !seen[st.String()] && st != StatusIdempotencyTableFull {
				t.Errorf("no generated command produced %s", st)
			}
		}
	})
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			logs, want, m := genLog(seed, 4000)
			for _, w := range want {
				if v := reflect.ValueOf(w); v.IsValid() && v.Kind() == reflect.Struct && v.FieldByName("Status").IsValid() {
					seen[Status(v.FieldByName("Status").Uint()).String()] = true
				}
				if tr, ok := w.(TxnResult); ok {
					seen[tr.OpStatus.String()] = true
				}
			}
			batched, single := New(), New()

			r := rand.New(rand.NewPCG(seed, 7))
			var got []interface{}
			for rest := logs; len(rest) > 0; {
				n := min(1+r.IntN(100), len(rest))
				got = append(got, batched.ApplyBatch(rest[:n])...)
				rest = rest[n:]
			}
			for i, l := range logs {
				if resp := single.Apply(l); !reflect.DeepEqual(resp, want[i]) {
					t.Fatalf("Apply(log %d): got %#v, model says %#v", l.Index, resp, want[i])
				}
			}
			if !reflect.DeepEqual(got, want) {
				for i := range want {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Fatalf("ApplyBatch response for log %d: got %#v, model says %#v", i+1, got[i], want[i])
					}
				}
			}

			if b, s := stateOf(batched), stateOf(single); b != s {
				t.Fatalf("replicas diverged: batched %+v, single %+v", b, s)
			}
			if batched.AppliedIndex() != uint64(len(logs)) {
				t.Fatalf("AppliedIndex = %d, want %d", batched.AppliedIndex(), len(logs))
			}
			if batched.Len() != len(m) {
				t.Fatalf("Len = %d, model has %d", batched.Len(), len(m))
			}
			for k, e := range m {
				got, ok := batched.Get(k, 0)
				if !ok || !reflect.DeepEqual(got, e) {
					t.Fatalf("Get(%q) = %+v, %v; model has %+v", k, got, ok, e)
				}
			}
			now := int64(1_700_000_000_000 + 100_000)
			if got, want := batched.ExpiredItems(now, 1<<30), m.expired(now); !reflect.DeepEqual(got, want) {
				t.Fatalf("ExpiredItems:\n got  %v\n want %v", got, want)
			}
		})
	}
}
