package chaos

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestTransferModel: the transfer checker accepts correct histories and
// rejects each kind of wrong one, so a pass in a scenario means something.
func TestTransferModel(t *testing.T) {
	read := func(bal []int64, ver []uint64) txnRecord {
		return txnRecord{Read: true, Outcome: outOK, Balances: bal, Versions: ver}
	}
	move := func(from, to int, check []uint64, newBal []int64, index uint64) txnRecord {
		return txnRecord{From: from, To: to, CheckVer: check, NewBal: newBal, Outcome: outOK, Index: index}
	}
	conflict := func(r txnRecord, failed []uint64) txnRecord {
		r.Outcome, r.Precond, r.Failed, r.Index = outFail, true, failed, 0
		return r
	}
	unknown := func(r txnRecord) txnRecord {
		r.Outcome, r.Index = outUnknown, 0
		return r
	}
	start := read([]int64{100, 100, 100}, []uint64{5, 5, 5})
	m := move(0, 1, []uint64{5, 5}, []int64{90, 110}, 9)
	cases := []struct {
		name  string
		recs  []txnRecord
		legal bool
	}{
		{"a transfer, then a read of it", []txnRecord{start, m, read([]int64{90, 110, 100}, []uint64{9, 9, 5})}, true},
		{"a read that misses an acknowledged transfer", []txnRecord{start, m, read([]int64{100, 100, 100}, []uint64{5, 5, 5})}, false},
		{"a read of half a transfer", []txnRecord{start, m, read([]int64{90, 100, 100}, []uint64{9, 5, 5})}, false},
		{"a transfer applied despite a stale check", []txnRecord{start, m, move(1, 2, []uint64{5, 5}, []int64{100, 110}, 12)}, false},
		{"a transfer whose version does not grow", []txnRecord{start, m, move(1, 2, []uint64{9, 5}, []int64{100, 110}, 9)}, false},
		{"a justified 412", []txnRecord{start, m, conflict(move(0, 2, []uint64{5, 5}, []int64{0, 0}, 0), []uint64{9, 0})}, true},
		{"a 412 that reports the checked version", []txnRecord{start, conflict(move(0, 2, []uint64{5, 5}, []int64{0, 0}, 0), []uint64{5, 0})}, false},
		{"a 412 reporting a version the account never had", []txnRecord{start, conflict(move(0, 2, []uint64{4, 5}, []int64{0, 0}, 0), []uint64{7, 0})}, false},
		{"an unknown transfer that applied", []txnRecord{start, unknown(m), read([]int64{90, 110, 100}, []uint64{11, 11, 5})}, true},
		{"an unknown transfer that did not apply", []txnRecord{start, unknown(m), read([]int64{100, 100, 100}, []uint64{5, 5, 5})}, true},
		{"an unknown transfer read with different balances", []txnRecord{start, unknown(m), read([]int64{95, 105, 100}, []uint64{11, 11, 5})}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.recs {
				tc.recs[i].Call, tc.recs[i].Return = int64(10*i), int64(10*i+5)
				tc.recs[i].Client = i % 2
			}
			res := porcupine.CheckOperations(transferModel, transferHistory(tc.recs))
			if res != tc.legal {
				t.Fatalf("porcupine says legal=%v, want %v", res, tc.legal)
			}
		})
	}
}
