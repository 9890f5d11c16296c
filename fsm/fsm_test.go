package fsm

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// step is one command in a scripted test and the response it must produce.
type step struct {
	cmd  Command
	want interface{}
}

func runSteps(t *testing.T, f *FSM, first uint64, steps []step) {
	t.Helper()
	for i, s := range steps {
		idx := first + uint64(i)
		if got := apply(t, f, idx, s.cmd); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d (index %d, %s %q now=%d): got %#v, want %#v", i, idx, s.cmd.Op, s.cmd.Key, s.cmd.Now, got, s.want)
		}
	}
}

func TestSetAndDeleteResults(t *testing.T) {
	tests := []struct {
		name  string
		steps []step // applied at indexes 1, 2, ...
		key   string
		now   int64 // Get's clock at the end
		want  *Entry
	}{
		{
			name:  "set creates",
			steps: []step{{setCmd("k", "1", 0, 100), SetResult{Created: true, Revision: 1}}},
			key:   "k", now: 100, want: &Entry{Value: []byte("1"), Revision: 1},
		},
		{
			name: "set over live entry updates",
			steps: []step{
				{setCmd("k", "1", 0, 100), SetResult{Created: true, Revision: 1}},
				{setCmd("k", "2", 5000, 200), SetResult{Created: false, Revision: 2, ExpiresAt: 5000}},
			},
			key: "k", now: 4999, want: &Entry{Value: []byte("2"), Revision: 2, ExpiresAt: 5000},
		},
		{
			name: "set over entry expired at cmd.Now creates",
			steps: []step{
				{setCmd("k", "1", 1000, 100), SetResult{Created: true, Revision: 1, ExpiresAt: 1000}},
				{setCmd("k", "2", 0, 1000), SetResult{Created: true, Revision: 2}},
			},
			key: "k", now: 1 << 40, want: &Entry{Value: []byte("2"), Revision: 2},
		},
		{
			name: "set over entry live one ms before expiry updates",
			steps: []step{
				{setCmd("k", "1", 1000, 100), SetResult{Created: true, Revision: 1, ExpiresAt: 1000}},
				{setCmd("k", "2", 0, 999), SetResult{Created: false, Revision: 2}},
			},
			key: "k", now: 0, want: &Entry{Value: []byte("2"), Revision: 2},
		},
		{
			name: "get hides expired entry",
			steps: []step{
				{setCmd("k", "1", 1000, 100), SetResult{Created: true, Revision: 1, ExpiresAt: 1000}},
			},
			key: "k", now: 1000, want: nil,
		},
		{
			name: "delete live",
			steps: []step{
				{setCmd("k", "1", 0, 100), SetResult{Created: true, Revision: 1}},
				{deleteCmd("k", 100), DeleteResult{Deleted: true, Revision: 2}},
			},
			key: "k", now: 100, want: nil,
		},
		{
			name:  "delete missing",
			steps: []step{{deleteCmd("k", 100), DeleteResult{Deleted: false, Revision: 1}}},
			key:   "k", now: 100, want: nil,
		},
		{
			name: "delete expired removes but reports not deleted",
			steps: []step{
				{setCmd("k", "1", 1000, 100), SetResult{Created: true, Revision: 1, ExpiresAt: 1000}},
				{deleteCmd("k", 1500), DeleteResult{Deleted: false, Revision: 2}},
				// Physically gone: a set at a clock where the old entry would be live creates.
				{setCmd("k", "2", 0, 500), SetResult{Created: true, Revision: 3}},
			},
			key: "k", now: 0, want: &Entry{Value: []byte("2"), Revision: 3},
		},
		{
			name: "barrier changes nothing",
			steps: []step{
				{setCmd("k", "1", 0, 100), SetResult{Created: true, Revision: 1}},
				{Command{Op: OpBarrier, Now: 100}, BarrierResult{}},
			},
			key: "k", now: 100, want: &Entry{Value: []byte("1"), Revision: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			runSteps(t, f, 1, tc.steps)
			if got := f.AppliedIndex(); got != uint64(len(tc.steps)) {
				t.Fatalf("AppliedIndex = %d, want %d", got, len(tc.steps))
			}
			got, ok := f.Get(tc.key, tc.now)
			switch {
			case tc.want == nil && ok:
				t.Fatalf("Get(%q, %d) = %+v, want missing", tc.key, tc.now, got)
			case tc.want != nil && (!ok || !reflect.DeepEqual(got, *tc.want)):
				t.Fatalf("Get(%q, %d) = %+v, %v; want %+v", tc.key, tc.now, got, ok, *tc.want)
			}
		})
	}
}

// The scenario from the design: an Expire proposal only removes the exact
// revision it names, and only once that revision is expired at the proposal's Now.
func TestConditionalExpire(t *testing.T) {
	f := New()
	// Pad to index 5 with other keys so that k's revisions are 5 and 7.
	for i := uint64(1); i <= 4; i++ {
		apply(t, f, i, setCmd("pad"+strings.Repeat("x", int(i)), "0", 0, 0))
	}
	runSteps(t, f, 5, []step{
		{setCmd("k", "a", 1000, 0), SetResult{Created: true, Revision: 5, ExpiresAt: 1000}},
		{Command{Op: OpBarrier}, BarrierResult{}},
		{setCmd("k", "b", 1000, 0), SetResult{Created: false, Revision: 7, ExpiresAt: 1000}},
		// Right revision, but not expired at the proposer's clock.
		{expireCmd(500, ExpireItem{"k", 7}), ExpireResult{Expired: 0}},
		{expireCmd(999, ExpireItem{"k", 7}), ExpireResult{Expired: 0}},
		// Stale revision: proposed before k was re-set.
		{expireCmd(2000, ExpireItem{"k", 5}), ExpireResult{Expired: 0}},
	})
	if e, ok := f.Get("k", 0); !ok || e.Revision != 7 {
		t.Fatalf("k after rejected expires = %+v, %v; want revision 7", e, ok)
	}
	runSteps(t, f, 11, []step{
		{expireCmd(2000, ExpireItem{"k", 7}, ExpireItem{"k", 7}, ExpireItem{"missing", 1}), ExpireResult{Expired: 1}},
	})
	if f.Len() != 4 {
		t.Fatalf("Len = %d, want 4 (k removed)", f.Len())
	}
	if _, ok := f.NextExpiry(); ok {
		t.Fatalf("expiry index not empty after k removed")
	}
}

func TestExpireNeverRemovesNonExpiringEntry(t *testing.T) {
	f := New()
	runSteps(t, f, 1, []step{
		{setCmd("k", "a", 0, 0), SetResult{Created: true, Revision: 1}},
		// Re-set without expiry must also drop the key from the expiry index.
		{setCmd("j", "a", 100, 0), SetResult{Created: true, Revision: 2, ExpiresAt: 100}},
		{setCmd("j", "b", 0, 0), SetResult{Created: false, Revision: 3}},
		{expireCmd(1000, ExpireItem{"j", 3}), ExpireResult{Expired: 0}},
		{expireCmd(1<<62, ExpireItem{"k", 1}), ExpireResult{Expired: 0}},
	})
	if f.Len() != 2 {
		t.Fatalf("Len = %d, want 2", f.Len())
	}
	if got := f.ExpiredItems(1<<62, 10); len(got) != 0 {
		t.Fatalf("ExpiredItems = %v, want none", got)
	}
}

func TestNonCommandLogsAdvanceAppliedIndexOnly(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("k", "v", 0, 0))
	before := f.Hash()
	if got := f.Apply(configLog(2)); got != nil {
		t.Fatalf("Apply(LogConfiguration) = %#v, want nil", got)
	}
	resps := f.ApplyBatch([]*raft.Log{configLog(3), cmdLog(4, Command{Op: OpBarrier}), configLog(5)})
	if want := []interface{}{nil, BarrierResult{}, nil}; !reflect.DeepEqual(resps, want) {
		t.Fatalf("ApplyBatch = %#v, want %#v", resps, want)
	}
	if f.AppliedIndex() != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", f.AppliedIndex())
	}
	if f.Hash() != before {
		t.Fatalf("state changed by non-command logs")
	}
}

func TestApplyBatchMatchesApply(t *testing.T) {
	logs := []*raft.Log{
		cmdLog(1, setCmd("a", "1", 0, 10)),
		cmdLog(2, setCmd("b", "2", 50, 10)),
		configLog(3),
		cmdLog(4, setCmd("a", "3", 0, 10)),
		cmdLog(5, deleteCmd("b", 60)),
		cmdLog(6, expireCmd(60, ExpireItem{"a", 4})),
		cmdLog(7, Command{Op: OpBarrier, Now: 70}),
	}
	want := []interface{}{
		SetResult{Created: true, Revision: 1},
		SetResult{Created: true, Revision: 2, ExpiresAt: 50},
		nil,
		SetResult{Created: false, Revision: 4},
		DeleteResult{Deleted: false, Revision: 5},
		ExpireResult{Expired: 0},
		BarrierResult{},
	}
	batch, single := New(), New()
	got := batch.ApplyBatch(logs)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ApplyBatch = %#v\nwant %#v", got, want)
	}
	for i, l := range logs {
		if r := single.Apply(l); !reflect.DeepEqual(r, want[i]) {
			t.Fatalf("Apply(log %d) = %#v, want %#v", l.Index, r, want[i])
		}
	}
	if stateOf(batch) != stateOf(single) {
		t.Fatalf("batch %+v != single %+v", stateOf(batch), stateOf(single))
	}
	if got := batch.ApplyBatch(nil); len(got) != 0 {
		t.Fatalf("ApplyBatch(nil) = %v", got)
	}
}

func TestUndecodableCommandPanics(t *testing.T) {
	bad := &raft.Log{Index: 42, Term: 3, Type: raft.LogCommand, Data: []byte{9, 9}}
	tests := []struct {
		name string
		run  func(f *FSM)
	}{
		{"Apply", func(f *FSM) { f.Apply(bad) }},
		{"ApplyBatch", func(f *FSM) { f.ApplyBatch([]*raft.Log{cmdLog(41, setCmd("k", "v", 0, 0)), bad}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			before := stateOf(f)
			func() {
				defer func() {
					r := recover()
					msg, _ := r.(string)
					if !strings.Contains(msg, "index 42") || !strings.Contains(msg, "unsupported command codec version") {
						t.Fatalf("panic = %#v, want a message naming index 42 and the decode error", r)
					}
				}()
				tc.run(f)
				t.Fatal("no panic")
			}()
			// The batch is decoded before any of it is applied.
			if got := stateOf(f); got != before {
				t.Fatalf("state changed before panic: %+v -> %+v", before, got)
			}
		})
	}
}

func TestStoredValueIsNotAliased(t *testing.T) {
	f := New()
	c := setCmd("k", "original", 0, 0)
	l := cmdLog(1, c)
	f.Apply(l)
	for i := range l.Data {
		l.Data[i] = 'X'
	}
	if e, _ := f.Get("k", 0); string(e.Value) != "original" {
		t.Fatalf("stored value aliases the log buffer: %q", e.Value)
	}
}
