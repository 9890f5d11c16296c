package fsm

import (
	"reflect"
	"testing"
)

// A transaction whose last operation cannot apply changes nothing, and one
// that applies gives every key it writes the same revision.
func TestTxnAllOrNothing(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("s", `"text"`, 0, 10))
	apply(t, f, 2, setCmd("a", "5", 0, 10))
	bad := txnCmd(20, []TxnCheck{{Kind: TxnCheckVersion, Key: "a", Version: 2}},
		Command{Op: OpSet, Key: "new", Value: []byte("1")},
		Command{Op: OpIncr, Key: "a", By: -5},
		Command{Op: OpIncr, Key: "s", By: 1})
	got := apply(t, f, 3, bad).(TxnResult)
	want := TxnResult{Status: StatusTxnOpFailed, FailedOp: 2, OpStatus: StatusNotAnInteger, OpCurrent: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("txn with a failing incr = %+v, want %+v", got, want)
	}
	if _, ok := f.Get("new", 20); ok {
		t.Fatal("a failed transaction wrote its first operation")
	}
	if e, _ := f.Get("a", 20); string(e.Value) != "5" || e.Revision != 2 {
		t.Fatalf("a failed transaction changed a: %+v", e)
	}

	ok := txnCmd(30, []TxnCheck{{Kind: TxnCheckVersion, Key: "a", Version: 2}, {Kind: TxnCheckValue, Key: "s", Value: []byte(`"text"`)}},
		Command{Op: OpIncr, Key: "a", By: -5},
		Command{Op: OpIncr, Key: "b", By: 5, ExpiresAt: 1000},
		Command{Op: OpTxnGet, Key: "s"})
	res := apply(t, f, 4, ok).(TxnResult)
	if res.Status != StatusOK || len(res.Results) != 3 {
		t.Fatalf("txn = %+v", res)
	}
	if r := res.Results[1].(IncrResult); r.Value != 5 || r.Revision != 4 || r.ExpiresAt != 1000 || !r.Created {
		t.Fatalf("incr result %+v", r)
	}
	if g := res.Results[2].(TxnGetResult); !g.Found || string(g.Value) != `"text"` || g.Revision != 1 {
		t.Fatalf("get result %+v", g)
	}
	for _, k := range []string{"a", "b"} {
		if e, _ := f.Get(k, 30); e.Revision != 4 {
			t.Fatalf("%s has revision %d, want the transaction's index 4", k, e.Revision)
		}
	}
	if items := f.ExpiredItems(1000, 10); len(items) != 1 || items[0].Key != "b" {
		t.Fatalf("the transaction's TTL is not in the expiry index: %v", items)
	}

	// The same checks again fail (a is at 4 now), naming the check.
	again := apply(t, f, 5, ok).(TxnResult)
	if again.Status != StatusTxnCheckFailed || !reflect.DeepEqual(again.FailedChecks, []TxnFailedCheck{{Position: 0, Current: 4}}) {
		t.Fatalf("repeated txn = %+v", again)
	}

	// A read-only transaction answers without the log, at the current state.
	ro := Command{Op: OpTxn, ReadBudget: 3, Checks: []TxnCheck{{Kind: TxnCheckExists, Key: "a"}},
		Ops: []Command{{Op: OpTxnGet, Key: "a"}, {Op: OpTxnGet, Key: "missing"}}}
	r := f.ReadTxn(ro, 40)
	if r.Status != StatusOK || r.Results[0].(TxnGetResult).Revision != 4 || r.Results[1].(TxnGetResult).Found {
		t.Fatalf("ReadTxn = %+v", r)
	}
	ro.Ops = append(ro.Ops, Command{Op: OpTxnGet, Key: "s"}) // "0" + `"text"` > 3 bytes
	if r := f.ReadTxn(ro, 40); r.Status != StatusTxnOpFailed || r.OpStatus != StatusTxnReadTooLarge || r.FailedOp != 2 {
		t.Fatalf("ReadTxn over its budget = %+v", r)
	}
}

func TestTxnResultRoundTrip(t *testing.T) {
	for _, r := range []TxnResult{
		{Status: StatusOK, Results: []interface{}{
			SetResult{Created: true, Revision: 9, ExpiresAt: 100},
			DeleteResult{Deleted: true, Revision: 9},
			IncrResult{Value: -3, Revision: 9},
			TxnGetResult{Found: true, Value: []byte(`{"a":1}`), Revision: 3, ExpiresAt: 7},
			TxnGetResult{},
		}},
		{Status: StatusTxnCheckFailed, FailedChecks: []TxnFailedCheck{{0, 0}, {63, 1 << 40}}},
		{Status: StatusTxnOpFailed, FailedOp: 3, OpStatus: StatusOverflow, OpCurrent: 8},
		{Status: StatusIdempotencyKeyReused},
	} {
		b := EncodeTxnResult(r)
		got, err := DecodeTxnResult(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %+v: %+v, %v", r, got, err)
		}
		for n := 0; n < len(b); n++ {
			if _, err := DecodeTxnResult(b[:n]); err == nil {
				t.Fatalf("prefix %d of %d of %+v decoded", n, len(b), r)
			}
		}
	}
}
