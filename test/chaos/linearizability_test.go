package chaos

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestRegisterModel checks the porcupine model, conditional puts included,
// on hand-made single-key histories: each must be judged as stated.
func TestRegisterModel(t *testing.T) {
	// Ops are sequential unless their call/return overlap; times in ms.
	type h struct {
		client    int
		call, ret int64
		op        Op
	}
	put := func(v string, ver uint64, created bool) Op {
		return Op{Kind: opPut, Class: classReg, Key: "k", Value: v, Outcome: outOK, Version: ver, Created: created}
	}
	ifMatch := func(v string, match, ver uint64) Op {
		o := put(v, ver, false)
		o.IfMatch = match
		return o
	}
	ifAbsent := func(v string, ver uint64) Op {
		o := put(v, ver, true)
		o.IfAbsent = true
		return o
	}
	precond := func(o Op, code string, current uint64) Op {
		o.Outcome, o.Precond, o.Code, o.Version, o.Created = outFail, true, "412 "+code, current, false
		return o
	}
	unknown := func(o Op) Op {
		o.Outcome, o.Version, o.Created = outUnknown, 0, false
		return o
	}
	get := func(v string, ver uint64) Op {
		return Op{Kind: opGet, Class: classReg, Key: "k", Outcome: outOK, Found: v != "", Got: v, Version: ver}
	}
	del := func(deleted bool) Op {
		return Op{Kind: opDelete, Class: classReg, Key: "k", Outcome: outOK, Deleted: deleted}
	}
	seq := func(ops ...Op) []h {
		var out []h
		for i, o := range ops {
			out = append(out, h{client: i % 3, call: int64(10 * i), ret: int64(10*i + 5), op: o})
		}
		return out
	}
	cases := []struct {
		name  string
		hist  []h
		legal bool
	}{
		{"plain puts and reads", seq(put("a", 3, true), get("a", 3), put("b", 5, false), get("b", 5)), true},
		{"version must grow", seq(put("a", 3, true), put("b", 3, false)), false},
		{"if-match on the current version", seq(put("a", 3, true), ifMatch("b", 3, 7), get("b", 7)), true},
		{"if-match on an old version succeeds", seq(put("a", 3, true), put("b", 5, false), ifMatch("c", 3, 7)), false},
		{"if-match mismatch reports the current version", seq(put("a", 3, true), put("b", 5, false), precond(ifMatch("c", 3, 0), "version_mismatch", 5), get("b", 5)), true},
		{"if-match 412 although it matched", seq(put("a", 3, true), precond(ifMatch("c", 3, 0), "version_mismatch", 3)), false},
		{"if-match 412 reports a wrong version", seq(put("a", 3, true), precond(ifMatch("c", 2, 0), "version_mismatch", 4)), false},
		{"if-match on a missing key", seq(precond(ifMatch("c", 2, 0), "version_mismatch", 0)), true},
		{"if-match succeeds on a deleted key", seq(put("a", 3, true), del(true), ifMatch("c", 3, 9)), false},
		{"if-none-match creates", seq(ifAbsent("a", 4), get("a", 4)), true},
		{"if-none-match on a live key succeeds", seq(put("a", 3, true), ifAbsent("b", 5)), false},
		{"if-none-match on a live key fails", seq(put("a", 3, true), precond(ifAbsent("b", 0), "already_exists", 3)), true},
		{"already_exists on an absent key", seq(put("a", 3, true), del(true), precond(ifAbsent("b", 0), "already_exists", 3)), false},
		{"a 412 with the other code", seq(put("a", 3, true), precond(ifAbsent("b", 0), "version_mismatch", 3)), false},
		{"412 has no effect", seq(put("a", 3, true), precond(ifMatch("c", 2, 0), "version_mismatch", 3), get("c", 3)), false},
		// A write of unknown outcome: its version is learnt from a later answer.
		{"unknown put, then if-match on the version read", seq(put("a", 3, true), unknown(put("b", 0, false)), get("b", 6), ifMatch("c", 6, 8)), true},
		{"unknown put, version read below the floor", seq(put("a", 3, true), unknown(put("b", 0, false)), get("b", 2)), false},
		{"unknown put, 412 reveals its version", seq(put("a", 3, true), unknown(put("b", 0, false)), precond(ifMatch("c", 3, 0), "version_mismatch", 6), get("b", 6)), true},
		{"unknown if-match that cannot have applied", seq(put("a", 3, true), put("b", 5, false), unknown(ifMatch("c", 3, 0)), get("c", 9)), false},
		{"unknown if-match applied", seq(put("a", 3, true), unknown(ifMatch("c", 3, 0)), get("c", 9)), true},
		{"unknown if-match not applied", seq(put("a", 3, true), unknown(ifMatch("c", 3, 0)), get("a", 3)), true},
		{"unknown if-none-match on a live key", seq(put("a", 3, true), unknown(ifAbsent("c", 0)), get("c", 9)), false},
		{"delete keeps the floor", seq(put("a", 5, true), del(true), put("b", 4, true)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ops []Op
			for _, e := range tc.hist {
				o := e.op
				o.Client, o.Call, o.Return = e.client, e.call*1e6, e.ret*1e6
				ops = append(ops, o)
			}
			res := porcupine.CheckOperations(registerModel, porcupineHistory(ops))
			if res != tc.legal {
				t.Fatalf("linearizable = %v, want %v", res, tc.legal)
			}
		})
	}
}
