package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/transport"
)

// TestLeaderRefusesInvalidWriteFrames sends hand-made forwarding frames
// (method write) straight to the leader's peer port, as anyone who reaches
// it could: every write that breaks a rule the HTTP layer applies is refused
// with the matching validation error, and nothing reaches the log.
func TestLeaderRefusesInvalidWriteFrames(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxValueBytes = 1024 })
	leader := c.leader()
	ctx := ctxTimeout(t, 30*time.Second)
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if _, err := leader.store.Set(ctx, k, []byte(`"v"`), 0); err != nil {
			t.Fatalf("seed %s: %v", k, err)
		}
	}
	cl := transport.NewClient(transport.ClientConfig{})
	defer cl.Close()
	send := func(r writeRequest) error {
		t.Helper()
		resp, err := cl.Call(ctx, leader.addr, methodWrite, encodeWriteRequest(r))
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		res, w, err := decodeWriteResponse(resp)
		if err != nil {
			t.Fatalf("decode answer: %v", err)
		}
		if err := w.err(); err != nil {
			return err
		}
		return res.err()
	}

	hugeTTL := int64(MaxTTL/time.Millisecond) + 1
	cases := []struct {
		name string
		req  writeRequest
		want error
	}{
		{"value not JSON", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte("notjson")}, ErrInvalidValue},
		{"value empty", writeRequest{op: fsm.OpSet, key: "pwned"}, ErrInvalidValue},
		{"value two JSON values", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte(`1 2`)}, ErrInvalidValue},
		{"value not compact", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte(`{"a": 1}`)}, ErrInvalidValue},
		{"value over the limit", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte(`"` + strings.Repeat("x", 1023) + `"`)}, ErrValueTooLarge},
		{"delete empty prefix", writeRequest{op: fsm.OpDeletePrefix, key: ""}, ErrInvalidPrefix},
		{"delete prefix with control char", writeRequest{op: fsm.OpDeletePrefix, key: "a\x00"}, ErrInvalidPrefix},
		{"empty key", writeRequest{op: fsm.OpSet, key: "", value: []byte(`1`)}, ErrInvalidKey},
		{"key with NUL", writeRequest{op: fsm.OpDelete, key: "a\x00b"}, ErrInvalidKey},
		{"key with C1 control", writeRequest{op: fsm.OpTouch, key: "a\u0085b"}, ErrInvalidKey},
		{"key not UTF-8", writeRequest{op: fsm.OpIncr, key: "a\xffb", by: 1}, ErrInvalidKey},
		{"key too long", writeRequest{op: fsm.OpSet, key: strings.Repeat("k", MaxKeyBytes+1), value: []byte(`1`)}, ErrInvalidKey},
		{"negative TTL", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte(`1`), ttlMs: -5}, ErrInvalidTTL},
		{"TTL over 10 years", writeRequest{op: fsm.OpTouch, key: "a/1", ttlMs: hugeTTL}, ErrInvalidTTL},
		{"keepTtl with a TTL", writeRequest{op: fsm.OpSet, key: "a/1", value: []byte(`1`), ttlMs: 1000, keepTTL: true}, ErrInvalidTTL},
		{"idempotency key with space", writeRequest{op: fsm.OpSet, key: "pwned", value: []byte(`1`), idemKey: "a b"}, ErrInvalidIdempotencyKey},
		{"idempotency key too long", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: strings.Repeat("i", MaxIdempotencyKeyBytes+1)}, ErrInvalidIdempotencyKey},
		{"scoped idempotency key too long", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: "web\x00" + strings.Repeat("i", MaxIdempotencyKeyBytes+1)}, ErrInvalidIdempotencyKey},
		{"idempotency scope empty", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: "\x00X1"}, ErrInvalidIdempotencyKey},
		{"idempotency scope with control char", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: "w\teb\x00X1"}, ErrInvalidIdempotencyKey},
		{"idempotency scope too long", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: strings.Repeat("s", maxIdempotencyScope+1) + "\x00X1"}, ErrInvalidIdempotencyKey},
		{"idempotency scope without a key", writeRequest{op: fsm.OpDelete, key: "a/1", idemKey: "web\x00"}, ErrInvalidIdempotencyKey},
		{"create-only incr", writeRequest{op: fsm.OpIncr, key: "a/1", by: 1, cond: fsm.CondIfAbsent}, ErrInvalidWrite},
		{"delete with a TTL", writeRequest{op: fsm.OpDelete, key: "a/1", ttlMs: 1000}, ErrInvalidWrite},
		{"conditional prefix delete", writeRequest{op: fsm.OpDeletePrefix, key: "a/", cond: fsm.CondIfMatch, condVersion: 3}, ErrInvalidWrite},
		{"txn without ops", writeRequest{op: fsm.OpTxn, txn: &txnRequest{}}, ErrInvalidWrite},
		{"txn key twice", writeRequest{op: fsm.OpTxn, txn: &txnRequest{ops: []writeRequest{{op: fsm.OpDelete, key: "pwned"}, {op: fsm.OpSet, key: "pwned", value: []byte("1")}}}}, ErrInvalidWrite},
		{"txn op value not JSON", writeRequest{op: fsm.OpTxn, txn: &txnRequest{ops: []writeRequest{{op: fsm.OpSet, key: "pwned", value: []byte("x")}}}}, ErrInvalidValue},
		{"txn check bad key", writeRequest{op: fsm.OpTxn, txn: &txnRequest{checks: []fsm.TxnCheck{{Kind: fsm.TxnCheckExists, Key: ""}}, ops: []writeRequest{{op: fsm.OpDelete, key: "pwned"}}}}, ErrInvalidKey},
		{"txn only reads", writeRequest{op: fsm.OpTxn, txn: &txnRequest{ops: []writeRequest{{op: fsm.OpTxnGet, key: "pwned"}}}}, ErrInvalidWrite},
		{"txn reads with an idempotency key", writeRequest{op: fsm.OpTxn, idemKey: "k", txn: &txnRequest{ops: []writeRequest{{op: fsm.OpDelete, key: "a/1"}, {op: fsm.OpTxnGet, key: "b"}}}}, ErrInvalidWrite},
		{"txn values over the limit", writeRequest{op: fsm.OpTxn, txn: &txnRequest{ops: []writeRequest{{op: fsm.OpSet, key: "pwned", value: []byte(`"` + strings.Repeat("x", 600) + `"`)}, {op: fsm.OpSet, key: "pwned2", value: []byte(`"` + strings.Repeat("x", 600) + `"`)}}}}, ErrValueTooLarge},
	}
	before, keys := leader.store.fsm.AppliedIndex(), leader.store.fsm.Len()
	for _, tc := range cases {
		err := send(tc.req)
		var ie *InvalidError
		if !errors.Is(err, tc.want) || !errors.As(err, &ie) || ie.Reason == "" {
			t.Errorf("%s: got %v, want %v with a reason", tc.name, err, tc.want)
		}
	}
	if after := leader.store.fsm.AppliedIndex(); after != before {
		t.Errorf("refused frames changed the log: applied index %d -> %d", before, after)
	}
	if n := leader.store.fsm.Len(); n != keys {
		t.Errorf("refused frames changed the data: %d keys -> %d", keys, n)
	}
	if _, _, err := leader.store.Read(ctx, "pwned", ReadOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("read pwned: %v, want not found", err)
	}

	// The same path takes a well-formed write: the refusals above are the
	// rules, not a closed door.
	if err := send(writeRequest{op: fsm.OpSet, key: "ok", value: []byte(`{"a":1}`), ttlMs: 60_000}); err != nil {
		t.Fatalf("valid frame refused: %v", err)
	}
	if err := send(writeRequest{op: fsm.OpDeletePrefix, key: "a/"}); err != nil {
		t.Fatalf("valid prefix delete refused: %v", err)
	}
	if n := leader.store.fsm.Len(); n != keys-2+1 {
		t.Errorf("after a set and a prefix delete of 2 keys: %d keys, want %d", n, keys-1)
	}
}

// TestFollowerRelaysRefusal: a write refused by the leader's rules comes back
// to a follower's caller as the same validation error (so the HTTP layer
// answers 4xx, not 500), whoever checked it.
func TestFollowerRelaysRefusal(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxValueBytes = 1024 })
	leader := c.leader()
	f := c.followers(leader)[0]
	ctx := ctxTimeout(t, 30*time.Second)
	_, err := f.store.Put(ctx, "k", []byte(`"`+strings.Repeat("x", 1023)+`"`), 0, false, WriteOptions{})
	var ie *InvalidError
	if !errors.Is(err, ErrValueTooLarge) || !errors.As(err, &ie) || !strings.Contains(ie.Reason, "1024") {
		t.Fatalf("oversized put through a follower: %v, want ErrValueTooLarge naming the limit", err)
	}
	if _, err := f.store.DeletePrefix(ctx, "", WriteOptions{}); !errors.Is(err, ErrInvalidPrefix) {
		t.Fatalf("empty prefix delete through a follower: %v, want ErrInvalidPrefix", err)
	}
	if _, err := f.store.Put(ctx, "k", []byte(`1`), 1500*time.Microsecond, false, WriteOptions{}); !errors.Is(err, ErrInvalidTTL) {
		t.Fatalf("sub-millisecond TTL: %v, want ErrInvalidTTL", err)
	}
}

// TestLargestValueThroughFollower: a write of the largest legal value, with
// the longest key and idempotency key, goes through a follower (so through
// a forwarding frame); one byte more is refused as too large, never as a
// transport failure.
func TestLargestValueThroughFollower(t *testing.T) {
	const limit = 64 << 10
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxValueBytes = limit })
	leader := c.leader()
	f := c.followers(leader)[0]
	ctx := ctxTimeout(t, 30*time.Second)
	key := strings.Repeat("k", MaxKeyBytes)
	value := []byte(`"` + strings.Repeat("v", limit-2) + `"`)
	opts := WriteOptions{IfAbsent: true, IdempotencyKey: strings.Repeat("i", MaxIdempotencyKeyBytes),
		IdempotencyScope: strings.Repeat("s", maxIdempotencyScope)}
	if _, err := f.store.Put(ctx, key, value, MaxTTL, false, opts); err != nil {
		t.Fatalf("largest value through a follower: %v", err)
	}
	it, _, err := f.store.Read(ctx, key, ReadOptions{})
	if err != nil || len(it.Value) != limit {
		t.Fatalf("read back: %d bytes, %v", len(it.Value), err)
	}
	bigger := []byte(`"` + strings.Repeat("v", limit-1) + `"`)
	if _, err := f.store.Put(ctx, key, bigger, 0, false, WriteOptions{}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("one byte over the limit: %v, want ErrValueTooLarge", err)
	}
}

// TestWriteFrameFitsLargestValue: FrameBytesFor covers the largest forwarded
// write a client request can produce, transport header included.
func TestWriteFrameFitsLargestValue(t *testing.T) {
	const transportHeader = 4 + 8 + 1 + 8 // length, id, kind, timeout
	for _, limit := range []int64{1, 1 << 20, 8 << 20} {
		r := writeRequest{
			op: fsm.OpSet, key: strings.Repeat("k", MaxKeyBytes), value: make([]byte, limit),
			ttlMs: int64(MaxTTL / time.Millisecond), cond: fsm.CondIfMatch, condVersion: ^uint64(0),
			by: -1 << 63, idemKey: scopedIdempotencyKey(strings.Repeat("s", maxIdempotencyScope), strings.Repeat("i", MaxIdempotencyKeyBytes)),
		}
		if n := transportHeader + len(encodeWriteRequest(r)); n > FrameBytesFor(limit) {
			t.Errorf("value limit %d: the largest write frame is %d bytes, FrameBytesFor gives %d", limit, n, FrameBytesFor(limit))
		}
		// The largest transaction: every op and check at its longest key,
		// the values (which share the value limit) in the first op.
		tr := &txnRequest{}
		for i := range MaxTxnItems {
			key := fmt.Sprintf("%0*d", MaxKeyBytes, i)
			tr.checks = append(tr.checks, fsm.TxnCheck{Kind: fsm.TxnCheckVersion, Key: key, Version: ^uint64(0)})
			tr.ops = append(tr.ops, writeRequest{op: fsm.OpIncr, key: key, ttlMs: int64(MaxTTL / time.Millisecond), by: -1 << 63})
		}
		tr.ops[0] = writeRequest{op: fsm.OpSet, key: tr.ops[0].key, value: make([]byte, limit), ttlMs: int64(MaxTTL / time.Millisecond)}
		r = writeRequest{op: fsm.OpTxn, txn: tr, idemKey: r.idemKey}
		if n := transportHeader + len(encodeWriteRequest(r)); n > FrameBytesFor(limit) {
			t.Errorf("value limit %d: the largest transaction frame is %d bytes, FrameBytesFor gives %d", limit, n, FrameBytesFor(limit))
		}
	}
}

// TestOpenRefusesTooSmallFrameLimit: a peer port whose frames cannot carry
// the largest value would turn such writes through a follower into
// transport failures; Open says so instead.
func TestOpenRefusesTooSmallFrameLimit(t *testing.T) {
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", MaxFrameBytes: 1 << 20, Logger: testLogger(t, "n1")})
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	cfg := fastConfig()
	cfg.NodeID, cfg.DataDir, cfg.MaxValueBytes = "n1", t.TempDir(), 1<<20
	if st, err := Open(cfg, mux); err == nil {
		st.Close()
		t.Fatal("Open accepted a frame limit smaller than the largest write")
	} else if !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("Open: %v, want a frame limit error", err)
	}
}

// TestPromotionIgnoresSelfReportedIndex: a non-voter whose node-info answer
// claims an applied index far ahead of the leader, but which never accepts
// the leader's log, is never promoted: promotion follows the leader's own
// view of replication, not what a node says about itself.
func TestPromotionIgnoresSelfReportedIndex(t *testing.T) {
	c := newTestCluster(t, 1, memberConfig)
	leader := c.leader()
	ctx := ctxTimeout(t, 30*time.Second)
	mustSet(t, leader, "k", `1`, 0)

	// The liar answers every RPC as a node far ahead, and never takes a raft
	// connection (nobody calls its raft layer's Accept).
	liar, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, "evil")})
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	var probes atomic.Int32
	liar.SetRPCHandler(func(_ context.Context, method uint8, _ []byte) ([]byte, error) {
		if method != methodNodeInfo {
			return nil, fmt.Errorf("unexpected method %d", method)
		}
		probes.Add(1)
		return encodeNodeInfo("evil", "", 1<<40, Build{}), nil
	})
	if a, err := leader.store.Join(ctx, JoinRequest{ID: "evil", PeerAddr: liar.Addr()}); err != nil || a != JoinAdded {
		t.Fatalf("join evil: %v %v", a, err)
	}
	// Every monitor round probes, then decides promotions: once the leader
	// has heard the lie several times, it has had as many chances to act on it.
	// (A promotion would also cost the cluster its quorum, which stops the
	// probes: check for it while waiting.)
	waitFor(t, 15*time.Second, "the leader to hear the claim 5 times", func() bool {
		return probes.Load() >= 5 || nodesByID(t, leader)["evil"].Voter
	})
	if n := nodesByID(t, leader)["evil"]; n.ID != "evil" || n.Voter {
		t.Fatalf("evil: %+v, want a non-voter member: a non-voter was promoted on its own report of its applied index", n)
	}

	// A real node behind the same path is promoted: the leader's view works.
	c.join("n2", leader)
	waitFor(t, 20*time.Second, "n2 promoted", func() bool { return nodesByID(t, leader)["n2"].Voter })
}

// TestChangesNeedAuthenticatedPeer: join, register, remove, transfer,
// write and restore frames over a connection the peer port does not vouch
// for are refused with nothing changed; the same frames from an
// authenticated member run.
func TestChangesNeedAuthenticatedPeer(t *testing.T) {
	var authenticated atomic.Bool
	c := newTestCluster(t, 1, func(cfg *Config) {
		memberConfig(cfg)
		cfg.AllowUnauthenticatedPeers = false
		cfg.PeerAuth = func(context.Context) (string, bool) { return "n2", authenticated.Load() }
	})
	leader := c.leader()
	ctx := ctxTimeout(t, 30*time.Second)
	cl := transport.NewClient(transport.ClientConfig{})
	defer cl.Close()
	call := func(method uint8, payload []byte) error {
		t.Helper()
		resp, err := cl.Call(ctx, leader.addr, method, payload)
		if err != nil {
			t.Fatalf("call %d: %v", method, err)
		}
		_, err = decodeAdminResponse(resp)
		return err
	}
	evil := JoinRequest{ID: "evil", PeerAddr: "127.0.0.1:1"}
	for _, f := range []struct {
		method  uint8
		payload []byte
	}{
		{methodJoin, encodeJoinRequest(evil, false)},
		{methodJoin, encodeJoinRequest(JoinRequest{ID: "n1", PeerAddr: leader.addr, HTTPAddr: "http://evil.test"}, true)},
		{methodRemove, encodeIDRequest("n1")},
		{methodTransfer, encodeIDRequest("")},
	} {
		if err := call(f.method, f.payload); !errors.Is(err, ErrPeerUnauthenticated) {
			t.Errorf("method %d from an unauthenticated connection: %v, want ErrPeerUnauthenticated", f.method, err)
		}
	}
	// Data-changing frames are refused the same way.
	applied := leader.store.fsm.AppliedIndex()
	resp, err := cl.Call(ctx, leader.addr, methodWrite, encodeWriteRequest(writeRequest{op: fsm.OpSet, key: "k", value: []byte(`1`)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, w, err := decodeWriteResponse(resp); err != nil || !errors.Is(w.err(), ErrPeerUnauthenticated) {
		t.Errorf("write from an unauthenticated connection: status %d %q %v", w.status, w.msg, err)
	}
	resp, err = cl.Call(ctx, leader.addr, methodRestore, fsm.Command{Op: fsm.OpRestoreAbort, RestoreID: 7, Now: 1}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, w, err := decodeRestoreResponse(resp); err != nil || w.status == statusOK || !strings.Contains(w.msg, ErrPeerUnauthenticated.Error()) {
		t.Errorf("restore step from an unauthenticated connection: status %d %q %v", w.status, w.msg, err)
	}
	if a := leader.store.fsm.AppliedIndex(); a != applied {
		t.Errorf("refused frames reached the log: applied %d -> %d", applied, a)
	}
	nodes := nodesByID(t, leader)
	if len(nodes) != 1 || nodes["n1"].HTTPAddr != "http://n1.test:8080" {
		t.Fatalf("membership changed by refused frames: %+v", nodes)
	}
	// Read-only membership RPCs still answer.
	if _, err := cl.Call(ctx, leader.addr, methodNodeStats, nil); err != nil {
		t.Fatalf("node stats: %v", err)
	}

	authenticated.Store(true)
	if err := call(methodJoin, encodeJoinRequest(evil, false)); err != nil {
		t.Fatalf("join from an authenticated member: %v", err)
	}
	if _, ok := nodesByID(t, leader)["evil"]; !ok {
		t.Fatal("authenticated join did not add the node")
	}
	resp, err = cl.Call(ctx, leader.addr, methodWrite, encodeWriteRequest(writeRequest{op: fsm.OpSet, key: "k", value: []byte(`1`)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, w, err := decodeWriteResponse(resp); err != nil || w.status != statusOK {
		t.Fatalf("write from an authenticated member: status %d %q %v", w.status, w.msg, err)
	}
}
