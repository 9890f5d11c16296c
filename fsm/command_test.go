package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

var roundTripCases = []struct {
	name string
	cmd  Command
}{
	{"set", setCmd("k", `{"a":1}`, 0, 1700000000000)},
	{"set with expiry", setCmd("user/42", `"v"`, 1700000060000, 1700000000000)},
	{"set extremes", Command{Op: OpSet, Key: strings.Repeat("k", 300), Value: bytes.Repeat([]byte("x"), 70000), ExpiresAt: math.MaxInt64, Now: math.MinInt64}},
	{"set negative times", setCmd("k", "1", -5, -1)},
	{"set empty key nil value", Command{Op: OpSet, Now: 1}},
	{"set binary key", setCmd("\x00\xff\u00e9", "null", 9, 8)},
	{"delete", deleteCmd("k", 1700000000000)},
	{"delete empty key", deleteCmd("", 0)},
	{"expire", expireCmd(2000, ExpireItem{"a", 5}, ExpireItem{"", 0}, ExpireItem{"b", math.MaxUint64})},
	{"expire no items", expireCmd(2000)},
	{"barrier", Command{Op: OpBarrier, Now: 1700000000000}},
	{"barrier zero", Command{Op: OpBarrier}},
	{"set if-match", Command{Op: OpSet, Key: "k", Value: []byte("1"), Now: 5, Cond: CondIfMatch, CondVersion: 7}},
	{"set if-match zero", Command{Op: OpSet, Key: "k", Value: []byte("1"), Now: 5, Cond: CondIfMatch}},
	{"set if-absent with ttl", Command{Op: OpSet, Key: "k", Value: []byte("1"), ExpiresAt: 99, Now: 5, Cond: CondIfAbsent}},
	{"set keep ttl", Command{Op: OpSet, Key: "k", Value: []byte(`"x"`), Now: 5, KeepTTL: true}},
	{"set idempotent", Command{Op: OpSet, Key: "k", Value: []byte("1"), Now: 5, IdemKey: "req-1", Fingerprint: [32]byte{1, 2, 3, 31: 9}}},
	{"delete if-match", Command{Op: OpDelete, Key: "k", Now: 5, Cond: CondIfMatch, CondVersion: math.MaxUint64}},
	{"delete idempotent", Command{Op: OpDelete, Key: "k", Now: 5, IdemKey: "x"}},
	{"touch", Command{Op: OpTouch, Key: "s", ExpiresAt: 1700000060000, Now: 1700000000000}},
	{"touch remove expiry if-match", Command{Op: OpTouch, Key: "s", Now: 1, Cond: CondIfMatch, CondVersion: 3}},
	{"incr", Command{Op: OpIncr, Key: "c", By: 1, Now: 1}},
	{"incr extremes", Command{Op: OpIncr, Key: "c", By: math.MinInt64, ExpiresAt: math.MaxInt64, Now: 1, IdemKey: strings.Repeat("i", 128), Fingerprint: [32]byte{0xff}}},
	{"delete prefix", Command{Op: OpDeletePrefix, Key: "user/42/", Now: 9}},
	{"delete prefix idempotent", Command{Op: OpDeletePrefix, Key: "p", Now: 9, IdemKey: "k"}},
	{"delete prefix chunk", Command{Op: OpDeletePrefixChunk, Key: "p/", Now: 9, Limit: 1000}},
	{"delete prefix chunk resumed", Command{Op: OpDeletePrefixChunk, Key: "p/", Now: 9, Limit: math.MaxUint64, Bound: 77, After: "p/x", IdemKey: "k", Fingerprint: [32]byte{7}}},
	{"node addr", Command{Op: OpNodeAddr, NodeID: "n4", HTTPAddr: "http://127.0.0.1:8084", Now: 9}},
	{"node addr forget", Command{Op: OpNodeAddr, NodeID: "n4", Now: 9}},
	{"cluster id", Command{Op: OpClusterID, ClusterID: "5f1c0de2a7b94e3d8c6b1a0f9e8d7c6b", Now: 9}},
	{"batch", batchCmd(setCmd("a", `{"x":1}`, 99, 5), deleteCmd("b", 6))},
	{"batch of every write kind", batchCmd(
		Command{Op: OpSet, Key: "s", Value: []byte("1"), Now: 5, Cond: CondIfMatch, CondVersion: 7, IdemKey: "r1"},
		Command{Op: OpDelete, Key: "d", Now: 6, Cond: CondIfMatch, CondVersion: 2},
		Command{Op: OpTouch, Key: "t", ExpiresAt: 1, Now: 7},
		Command{Op: OpIncr, Key: "i", By: -3, Now: 8, IdemKey: "r2", Fingerprint: [32]byte{4}},
		setCmd("", "null", 0, -1),
	)},
	{"txn", txnCmd(5, []TxnCheck{{Kind: TxnCheckVersion, Key: "a", Version: 12}, {Kind: TxnCheckAbsent, Key: "b"}},
		Command{Op: OpSet, Key: "a", Value: []byte(`{"n":1}`), ExpiresAt: 60_005},
		Command{Op: OpSet, Key: "c", Value: []byte("2"), KeepTTL: true},
		Command{Op: OpDelete, Key: "b"},
		Command{Op: OpIncr, Key: "n", By: 5},
		Command{Op: OpTouch, Key: "s", ExpiresAt: 1_800_005},
		Command{Op: OpTxnGet, Key: "d"})},
	{"txn every check kind", txnCmd(5, []TxnCheck{{Kind: TxnCheckExists, Key: "x"}, {Kind: TxnCheckValue, Key: "y", Value: []byte(`"v"`)}, {Kind: TxnCheckVersion, Key: "z"}},
		Command{Op: OpDelete, Key: "x"})},
	{"txn idempotent", func() Command {
		c := txnCmd(5, nil, Command{Op: OpIncr, Key: "n", By: -1}, Command{Op: OpSet, Key: "m", Value: []byte("1")})
		c.IdemKey, c.Fingerprint = "req", [32]byte{3}
		return c
	}()},
}

// txnCmd is an OpTxn at now with a 1 MiB read budget.
func txnCmd(now int64, checks []TxnCheck, ops ...Command) Command {
	return Command{Op: OpTxn, Now: now, Checks: checks, Ops: ops, ReadBudget: 1 << 20}
}

// txnBytes hand-encodes an OpTxn of already encoded operations (no checks).
func txnBytes(ops ...[]byte) []byte {
	b := []byte{2, byte(OpTxn), 0, 0, 0, 0}
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, w := range ops {
		b = binary.AppendUvarint(b, uint64(len(w)))
		b = append(b, w...)
	}
	return b
}

// batchCmd is an OpBatch of ws (Now taken from the first write).
func batchCmd(ws ...Command) Command {
	return Command{Op: OpBatch, Now: ws[0].Now, Batch: ws}
}

// batchBytes hand-encodes an OpBatch of already encoded writes, so invalid
// batches can be built.
func batchBytes(ws ...[]byte) []byte {
	b := []byte{2, byte(OpBatch), 0, 0}
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		b = binary.AppendUvarint(b, uint64(len(w)))
		b = append(b, w...)
	}
	return b
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.cmd.Encode()
			if b[0] != tc.cmd.version() || Op(b[1]) != tc.cmd.Op {
				t.Fatalf("header = %d %d, want %d %d", b[0], b[1], tc.cmd.version(), tc.cmd.Op)
			}
			if len(b) != tc.cmd.encodedSize() {
				t.Fatalf("len = %d, encodedSize = %d", len(b), tc.cmd.encodedSize())
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Fatalf("round trip:\n got  %+v\n want %+v", got, tc.cmd)
			}
			if again := got.Encode(); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
			// Decode must not alias its input.
			for i := range b {
				b[i] = 0xAA
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Fatalf("decoded command changed when input was overwritten")
			}
		})
	}
}

func TestEncodeDropsFieldsTheOpDoesNotUse(t *testing.T) {
	c := Command{Op: OpDelete, Key: "k", Value: []byte("v"), ExpiresAt: 9, Now: 3, Items: []ExpireItem{{"x", 1}}}
	got, err := Decode(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if want := deleteCmd("k", 3); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	huge := binary.AppendUvarint(nil, 1<<62)
	overflow := bytes.Repeat([]byte{0xff}, 11)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"version only", []byte{CodecVersion}, ErrMalformed},
		{"version 0", []byte{0, byte(OpSet), 0}, ErrUnsupportedVersion},
		{"version 3", append([]byte{3}, setCmd("k", "v", 0, 0).Encode()[1:]...), ErrUnsupportedVersion},
		{"op 0", []byte{CodecVersion, 0, 0}, ErrUnknownOp},
		{"op 10", []byte{CodecVersion, 10, 0, 0}, ErrUnknownOp},
		{"delete prefix chunk in version 1", []byte{1, byte(OpDeletePrefixChunk), 0, 1, 'p', 1, 0, 0}, ErrUnknownOp},
		{"delete prefix chunk limit 0", []byte{2, byte(OpDeletePrefixChunk), 0, 0, 1, 'p', 0, 0, 0}, ErrMalformed},
		{"delete prefix chunk resumes outside its prefix", []byte{2, byte(OpDeletePrefixChunk), 0, 0, 1, 'p', 1, 5, 1, 'q'}, ErrMalformed},
		{"batch holds a delete-prefix chunk", batchBytes(setCmd("a", "1", 0, 1).Encode(), Command{Op: OpDeletePrefixChunk, Key: "b", Limit: 1}.Encode()), ErrMalformed},
		{"batch in version 1", []byte{1, byte(OpBatch), 0, 2}, ErrUnknownOp},
		{"batch of one", batchBytes(setCmd("a", "1", 0, 1).Encode()), ErrMalformed},
		{"batch of none", []byte{2, byte(OpBatch), 0, 0, 0}, ErrMalformed},
		{"batch writes a key twice", batchBytes(setCmd("a", "1", 0, 1).Encode(), deleteCmd("a", 1).Encode()), ErrMalformed},
		{"batch holds an expire", batchBytes(setCmd("a", "1", 0, 1).Encode(), expireCmd(1, ExpireItem{"b", 1}).Encode()), ErrMalformed},
		{"batch holds a delete-prefix", batchBytes(setCmd("a", "1", 0, 1).Encode(), Command{Op: OpDeletePrefix, Key: "b"}.Encode()), ErrMalformed},
		{"batch holds a batch", batchBytes(setCmd("a", "1", 0, 1).Encode(), batchCmd(setCmd("b", "1", 0, 1), setCmd("c", "1", 0, 1)).Encode()), ErrMalformed},
		{"batch write undecodable", batchBytes(setCmd("a", "1", 0, 1).Encode(), []byte{9, 9, 9, 9, 9}), ErrMalformed},
		{"batch count beyond input", []byte{2, byte(OpBatch), 0, 0, 200, 1, 0, 0, 0, 0}, ErrMalformed},
		{"batch with flags", []byte{2, byte(OpBatch), 0, flagIdem, 0}, ErrMalformed},
		{"v2 op in version 1", []byte{1, byte(OpIncr), 0, 1, 'k', 2, 0}, ErrUnknownOp},
		{"v1 command in version 2 layout", []byte{2, byte(OpSet), 0, 0, 1, 'k', 1, '1', 0}, ErrMalformed},
		{"unknown flag", []byte{2, byte(OpSet), 0, 0x10, 1, 'k', 1, '1', 0}, ErrMalformed},
		{"flag not valid for op", []byte{2, byte(OpDelete), 0, flagKeepTTL, 1, 'k'}, ErrMalformed},
		{"if-match and if-absent", []byte{2, byte(OpSet), 0, flagIfMatch | flagIfAbsent, 1, 1, 'k', 1, '1', 0}, ErrMalformed},
		{"empty idempotency key", append([]byte{2, byte(OpDeletePrefix), 0, flagIdem, 0}, make([]byte, 32+2)...), ErrMalformed},
		{"short fingerprint", []byte{2, byte(OpDeletePrefix), 0, flagIdem, 1, 'i', 1, 2, 3}, ErrMalformed},
		{"op 255", []byte{CodecVersion, 255, 0}, ErrUnknownOp},
		{"node addr in version 1", []byte{1, byte(OpNodeAddr), 0, 1, 'n', 0}, ErrUnknownOp},
		{"node addr with flags", []byte{2, byte(OpNodeAddr), 0, flagIdem, 1, 'n', 0}, ErrMalformed},
		{"cluster id in version 1", []byte{1, byte(OpClusterID), 0, 1, 'c'}, ErrUnknownOp},
		{"empty cluster id", []byte{2, byte(OpClusterID), 0, 0, 0}, ErrMalformed},
		{"cluster id with a space", []byte{2, byte(OpClusterID), 0, 0, 3, 'a', ' ', 'b'}, ErrMalformed},
		{"txn in version 1", []byte{1, byte(OpTxn), 0, 0, 0, 1}, ErrUnknownOp},
		{"get on its own", Command{Op: OpTxnGet, Key: "k"}.Encode(), ErrUnknownOp},
		{"txn without operations", []byte{2, byte(OpTxn), 0, 0, 0, 0, 0}, ErrMalformed},
		{"txn that only reads", txnBytes(Command{Op: OpTxnGet, Key: "k"}.Encode()), ErrMalformed},
		{"txn operates on a key twice", txnBytes(Command{Op: OpSet, Key: "k", Value: []byte("1")}.Encode(), Command{Op: OpTxnGet, Key: "k"}.Encode()), ErrMalformed},
		{"txn operation with its own time", txnBytes(setCmd("k", "1", 0, 5).Encode()), ErrMalformed},
		{"txn operation with a condition", txnBytes(Command{Op: OpDelete, Key: "k", Cond: CondIfMatch, CondVersion: 1}.Encode()), ErrMalformed},
		{"txn operation with an idempotency key", txnBytes(Command{Op: OpDelete, Key: "k", IdemKey: "i"}.Encode()), ErrMalformed},
		{"txn holds a delete-prefix", txnBytes(Command{Op: OpDeletePrefix, Key: "p"}.Encode()), ErrMalformed},
		{"txn holds a txn", txnBytes(txnCmd(0, nil, deleteCmd("k", 0)).Encode()), ErrMalformed},
		{"txn get with flags", txnBytes(deleteCmd("a", 0).Encode(), []byte{2, byte(OpTxnGet), 0, flagIdem, 1, 'k'}), ErrMalformed},
		{"txn get in version 1", txnBytes(deleteCmd("a", 0).Encode(), []byte{1, byte(OpTxnGet), 0, 1, 'k'}), ErrMalformed},
		{"idempotent txn that reads", func() []byte {
			c := txnCmd(0, nil, deleteCmd("a", 0), Command{Op: OpTxnGet, Key: "b"})
			c.IdemKey = "i"
			return c.Encode()
		}(), ErrMalformed},
		{"txn unknown check kind", []byte{2, byte(OpTxn), 0, 0, 0, 1, 9, 1, 'k', 1, 5, 2, byte(OpDelete), 0, 1, 'k'}, ErrMalformed},
		{"txn check count beyond input", []byte{2, byte(OpTxn), 0, 0, 0, 100, 1, 0}, ErrMalformed},
		{"barrier missing now", []byte{CodecVersion, byte(OpBarrier)}, ErrMalformed},
		{"barrier trailing byte", append(Command{Op: OpBarrier}.Encode(), 0), ErrMalformed},
		{"set trailing byte", append(setCmd("k", "v", 1, 2).Encode(), 0), ErrMalformed},
		{"now overflows", append([]byte{CodecVersion, byte(OpBarrier)}, overflow...), ErrMalformed},
		{"huge key length", append([]byte{CodecVersion, byte(OpSet), 0}, huge...), ErrMalformed},
		{"huge value length", append([]byte{CodecVersion, byte(OpSet), 0, 1, 'k'}, huge...), ErrMalformed},
		{"huge item count", append([]byte{CodecVersion, byte(OpExpire), 0}, huge...), ErrMalformed},
		{"item count beyond input", []byte{CodecVersion, byte(OpExpire), 0, 3, 0, 0, 0, 0}, ErrMalformed},
		{"max uvarint key length", append([]byte{CodecVersion, byte(OpDelete), 0}, binary.AppendUvarint(nil, math.MaxUint64)...), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode err = %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(c, Command{}) {
				t.Fatalf("Decode returned %+v with an error, want zero Command", c)
			}
		})
	}
}

// Every strict prefix of a valid encoding is truncated and must be rejected.
func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for _, tc := range roundTripCases {
		b := tc.cmd.Encode()
		for n := 0; n < len(b); n++ {
			if _, err := Decode(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: Decode(prefix %d of %d) err = %v, want ErrMalformed", tc.name, n, len(b), err)
			}
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpSet: "set", OpDelete: "delete", OpExpire: "expire", OpBarrier: "barrier", OpTouch: "touch", OpIncr: "incr", OpDeletePrefix: "delete-prefix", OpNodeAddr: "node-addr", OpDeletePrefixChunk: "delete-prefix-chunk", OpClusterID: "cluster-id", OpTxn: "txn", OpTxnGet: "get", 10: "op(10)"} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(op), got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range roundTripCases {
		// Large seeds make the fuzzer spend its time minimising, not exploring.
		if b := tc.cmd.Encode(); len(b) <= 1024 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{CodecVersion, byte(OpExpire), 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrUnknownOp) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v wraps none of the sentinels", err)
			}
			return
		}
		again, err := Decode(c.Encode())
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encode round trip:\n got  %+v\n want %+v", again, c)
		}
	})
}
