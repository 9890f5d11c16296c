package fsm

import (
	"fmt"
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

func (m model) apply(index uint64, c Command) interface{} {
	switch c.Op {
	case OpSet:
		old, ok := m[c.Key]
		m[c.Key] = Entry{Value: c.Value, Revision: index, ExpiresAt: c.ExpiresAt}
		return SetResult{Created: !ok || old.Expired(c.Now), Revision: index, ExpiresAt: c.ExpiresAt}
	case OpDelete:
		old, ok := m[c.Key]
		delete(m, c.Key)
		return DeleteResult{Deleted: ok && !old.Expired(c.Now), Revision: index}
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
	}
	panic("model: unknown op")
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
	now := int64(1_700_000_000_000)
	key := func() string { return fmt.Sprintf("k%03d", r.IntN(200)) }
	for i := 1; i <= n; i++ {
		idx := uint64(i)
		now += int64(r.IntN(50)) - 10 // proposers' clocks are not monotonic
		var c Command
		switch p := r.IntN(100); {
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
		want = append(want, m.apply(idx, c))
	}
	return logs, want, m
}

func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			logs, want, m := genLog(seed, 4000)
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
