package store

import (
	"bytes"
	"testing"

	"github.com/quorumkv/quorumkv/fsm"
)

// FuzzDecodeWriteRequest feeds hostile forwarding-RPC payloads to the
// leader's decoder: it must never panic, and whatever it accepts must survive
// an encode/decode round trip unchanged.
func FuzzDecodeWriteRequest(f *testing.F) {
	for _, r := range []writeRequest{
		{op: fsm.OpSet, key: "k", value: []byte(`{"a":1}`), ttlMs: 1500},
		{op: fsm.OpDelete, key: "session-1"},
		{op: fsm.OpIncr, key: "c", by: -7, idemKey: "retry-1"},
		{op: fsm.OpSet, key: "k", value: []byte("1"), cond: fsm.CondIfAbsent},
		{op: fsm.OpDeletePrefix, key: "user/"},
		{op: fsm.OpTxn, idemKey: "t", txn: &txnRequest{
			checks: []fsm.TxnCheck{{Kind: fsm.TxnCheckVersion, Key: "a", Version: 3}, {Kind: fsm.TxnCheckValue, Key: "b", Value: []byte("1")}},
			ops:    []writeRequest{{op: fsm.OpSet, key: "a", value: []byte("2"), ttlMs: 1000}, {op: fsm.OpIncr, key: "n", by: 1}, {op: fsm.OpTxnGet, key: "g"}},
		}},
	} {
		f.Add(encodeWriteRequest(r))
	}
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeWriteRequest(b)
		if err != nil {
			return
		}
		// The leader's rules judge whatever decodes, without panicking;
		// what they accept is a write an API request could have made.
		if err := r.check(1 << 20); err == nil && CheckKey(r.key) != nil && r.op != fsm.OpDeletePrefix {
			t.Fatalf("check accepted a bad key %q", r.key)
		}
		again, err := decodeWriteRequest(encodeWriteRequest(r))
		if err != nil {
			t.Fatalf("re-decoding an accepted request: %v", err)
		}
		if (r.txn == nil) != (again.txn == nil) || (r.txn != nil && !bytes.Equal(encodeTxnRequest(again), encodeTxnRequest(r))) {
			t.Fatalf("round trip changed the transaction: %+v -> %+v", r.txn, again.txn)
		}
		if again.op != r.op || again.key != r.key || !bytes.Equal(again.value, r.value) || again.ttlMs != r.ttlMs ||
			again.cond != r.cond || again.condVersion != r.condVersion || again.by != r.by || again.idemKey != r.idemKey ||
			again.keepTTL != r.keepTTL || again.fingerprint != r.fingerprint {
			t.Fatalf("round trip changed the request: %+v -> %+v", r, again)
		}
	})
}

// FuzzDecodeResponses: the follower's decoders of the leader's answers never panic.
func FuzzDecodeResponses(f *testing.F) {
	f.Add(encodeWriteResponse(writeResult{created: true, revision: 9, expiresAt: 12}, wireError{}, rpcFormatV2))
	f.Add(encodeReadIndexResponse(7, 1700000000000, wireError{}))
	f.Add([]byte{1, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeWriteResponse(b)
		decodeReadIndexAnswer(b)
	})
}
