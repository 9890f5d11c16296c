package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

const (
	txnAccounts = 5
	txnStart    = 100
)

func account(i int) string { return fmt.Sprintf("acct/%d", i) }

// readAccounts reads every account in one read-only transaction (a
// linearizable multi-key read) and returns balances and versions.
func readAccounts(ctx context.Context, st *Store) ([]int64, []uint64, error) {
	req := TxnRequest{}
	for i := range txnAccounts {
		req.Ops = append(req.Ops, TxnOp{Kind: TxnGet, Key: account(i)})
	}
	res, err := st.Txn(ctx, req, WriteOptions{})
	if err != nil {
		return nil, nil, err
	}
	bal, ver := make([]int64, txnAccounts), make([]uint64, txnAccounts)
	for i, r := range res.Results {
		if !r.Found {
			return nil, nil, fmt.Errorf("%s missing at index %d", r.Key, res.Index)
		}
		if bal[i], err = strconv.ParseInt(string(r.Value), 10, 64); err != nil {
			return nil, nil, err
		}
		ver[i] = r.Version
	}
	return bal, ver, nil
}

func sum(xs []int64) (n int64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// TestTxnTransfersKeepTheSum: 20 loops, spread over all three nodes, move
// amounts between accounts with version-checked transactions while a reader
// checks the total in every linearizable multi-key read; at the end every
// node holds the same total. The same cluster then checks the failure
// answers, idempotent replay and quotas.
func TestTxnTransfersKeepTheSum(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	init := TxnRequest{}
	for i := range txnAccounts {
		init.Ops = append(init.Ops, TxnOp{Kind: TxnPut, Key: account(i), Value: []byte(strconv.Itoa(txnStart))})
	}
	if _, err := c.nodes[1].store.Txn(ctxTimeout(t, 10*time.Second), init, WriteOptions{}); err != nil {
		t.Fatalf("initial balances: %v", err)
	}
	const loops, transfers = 20, 8
	want := int64(txnAccounts * txnStart)
	var applied, conflicts atomic.Int64
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		reads := 0
		for {
			select {
			case <-stop:
				if reads == 0 {
					readerDone <- errors.New("the reader read nothing")
				}
				readerDone <- nil
				return
			default:
			}
			bal, _, err := readAccounts(ctxTimeout(t, 5*time.Second), c.nodes[reads%3].store)
			if err != nil {
				readerDone <- err
				return
			}
			if s := sum(bal); s != want {
				readerDone <- fmt.Errorf("a linearizable read saw a total of %d, want %d: %v", s, want, bal)
				return
			}
			reads++
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, loops)
	for l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := c.nodes[l%3].store
			r := rand.New(rand.NewPCG(uint64(l), 1))
			for done := 0; done < transfers; {
				from, to := r.IntN(txnAccounts), r.IntN(txnAccounts-1)
				if to >= from {
					to++
				}
				bal, ver, err := readAccounts(ctxTimeout(t, 5*time.Second), st)
				if err != nil {
					errs <- err
					return
				}
				amt := int64(1 + r.IntN(10))
				_, err = st.Txn(ctxTimeout(t, 5*time.Second), TxnRequest{
					Checks: []TxnCheck{{Kind: TxnCheckVersion, Key: account(from), Version: ver[from]}, {Kind: TxnCheckVersion, Key: account(to), Version: ver[to]}},
					Ops: []TxnOp{
						{Kind: TxnPut, Key: account(from), Value: []byte(strconv.FormatInt(bal[from]-amt, 10))},
						{Kind: TxnPut, Key: account(to), Value: []byte(strconv.FormatInt(bal[to]+amt, 10))},
					},
				}, WriteOptions{})
				var ce *TxnCheckError
				switch {
				case err == nil:
					applied.Add(1)
					done++
				case errors.As(err, &ce):
					conflicts.Add(1) // another loop moved one of them first: retry
				default:
					errs <- fmt.Errorf("transfer through %s: %v", st.cfg.NodeID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transfers applied, %d refused by a version check and retried", applied.Load(), conflicts.Load())
	leaderIndex := c.leader().store.AppliedIndex()
	for _, nd := range c.nodes {
		waitFor(t, 10*time.Second, nd.id+" to catch up", func() bool { return nd.store.AppliedIndex() >= leaderIndex })
		bal, _, err := readAccounts(ctxTimeout(t, 5*time.Second), nd.store)
		if err != nil || sum(bal) != want {
			t.Fatalf("%s at the end: %v (total %d), %v", nd.id, bal, sum(bal), err)
		}
	}

	st := c.nodes[2].store // a follower or the leader: either answers alike
	ctx := ctxTimeout(t, 10*time.Second)
	t.Run("failed checks change nothing and name every check", func(t *testing.T) {
		_, ver, _ := readAccounts(ctx, st)
		_, err := st.Txn(ctx, TxnRequest{
			Checks: []TxnCheck{{Kind: TxnCheckVersion, Key: account(0), Version: ver[0]}, {Kind: TxnCheckAbsent, Key: account(1)}, {Kind: TxnCheckValue, Key: account(2), Value: []byte(`"no"`)}},
			Ops:    []TxnOp{{Kind: TxnDelete, Key: account(0)}},
		}, WriteOptions{})
		var ce *TxnCheckError
		if !errors.As(err, &ce) || len(ce.Failed) != 2 || ce.Failed[0] != (TxnFailedCheck{1, account(1), ver[1]}) || ce.Failed[1].Position != 2 {
			t.Fatalf("err = %v (%+v)", err, ce)
		}
	})
	t.Run("an op that cannot apply is named and nothing is written", func(t *testing.T) {
		_, err := st.Txn(ctx, TxnRequest{Ops: []TxnOp{
			{Kind: TxnPut, Key: "fresh", Value: []byte("1")},
			{Kind: TxnPatch, Key: "missing", TTL: time.Minute},
		}}, WriteOptions{})
		var oe *TxnOpError
		if !errors.As(err, &oe) || oe.Position != 1 || oe.Kind != TxnPatch || !errors.Is(oe.Cause, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if _, err := st.Get(ctx, "fresh", Linearizable); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the failed transaction wrote its first op: %v", err)
		}
	})
	t.Run("an idempotent retry answers the first result", func(t *testing.T) {
		req := TxnRequest{Ops: []TxnOp{{Kind: TxnIncr, Key: "ctr", By: 1, TTL: time.Hour}, {Kind: TxnPut, Key: "u", Value: []byte(`"x"`)}}}
		opts := WriteOptions{IdempotencyKey: "once", IdempotencyScope: "tester", Fingerprint: [32]byte{1}}
		first, err := st.Txn(ctx, req, opts)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.nodes[0].store.Txn(ctx, req, opts)
		if err != nil || again.Results[0].Int != 1 || again.Results[0].Version != first.Results[0].Version {
			t.Fatalf("retry = %+v, %v; first %+v", again, err, first)
		}
		opts.Fingerprint[0] = 2
		if _, err := st.Txn(ctx, req, opts); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Fatalf("another request under the key: %v", err)
		}
		req.Ops = append(req.Ops, TxnOp{Kind: TxnGet, Key: "z"})
		var ie *InvalidError
		if _, err := st.Txn(ctx, req, opts); !errors.As(err, &ie) {
			t.Fatalf("an idempotent transaction that reads: %v", err)
		}
	})
}

// TestTxnQuota: a transaction counts the keys and bytes of all its writes.
func TestTxnQuota(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.MaxKeys = 3 })
	st := c.leader().store
	ctx := ctxTimeout(t, 10*time.Second)
	two := TxnRequest{Ops: []TxnOp{{Kind: TxnPut, Key: "a", Value: []byte("1")}, {Kind: TxnIncr, Key: "b", By: 1}}}
	if _, err := st.Txn(ctx, two, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	more := TxnRequest{Ops: []TxnOp{{Kind: TxnPut, Key: "c", Value: []byte("1")}, {Kind: TxnPut, Key: "d", Value: []byte("1")}}}
	if _, err := st.Txn(ctx, more, WriteOptions{}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("two new keys past the keys quota: %v", err)
	}
	if _, err := st.Txn(ctx, two, WriteOptions{}); err != nil {
		t.Fatalf("rewriting stored keys must pass the quota: %v", err)
	}
	if _, err := st.Txn(ctx, TxnRequest{Ops: []TxnOp{{Kind: TxnDelete, Key: "a"}, {Kind: TxnPut, Key: "c", Value: []byte("2")}}}, WriteOptions{}); err != nil {
		t.Fatalf("one new key within the quota: %v", err)
	}
}

// TestTxnForwardedWhileLeaderDies: a follower forwards a transaction to a
// leader that appends it and dies before anyone learns the outcome; the
// client repeats it with its Idempotency-Key and it applies exactly once.
func TestTxnForwardedWhileLeaderDies(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	via := c.followers(leader)[0]
	req := TxnRequest{Ops: []TxnOp{{Kind: TxnIncr, Key: "visits", By: 1}, {Kind: TxnPut, Key: "last", Value: []byte(`"login"`)}}}
	opts := WriteOptions{IdempotencyKey: "login-42", Fingerprint: [32]byte{42}}
	before := leader.store.raft.LastIndex()
	// The leader can reach nobody: it appends the transaction and waits.
	c.isolate(leader)
	first := make(chan error, 1)
	go func() {
		_, err := via.store.Txn(ctxTimeout(t, 10*time.Second), req, opts)
		first <- err
	}()
	waitFor(t, 10*time.Second, "the leader to append the forwarded transaction", func() bool {
		return leader.store.raft.LastIndex() > before
	})
	leader.stop()
	c.heal()
	if err := <-first; !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNoLeader) {
		t.Fatalf("the first attempt: %v, want an unknown outcome", err)
	}
	var res TxnResult
	waitFor(t, 20*time.Second, "the repeated transaction to apply", func() bool {
		var err error
		res, err = via.store.Txn(ctxTimeout(t, 5*time.Second), req, opts)
		return err == nil
	})
	again, err := via.store.Txn(ctxTimeout(t, 5*time.Second), req, opts)
	if err != nil || res.Results[0].Int != 1 || again.Results[0].Int != 1 || again.Results[0].Version != res.Results[0].Version {
		t.Fatalf("applied %+v, repeated %+v (%v): want one increment", res, again, err)
	}
	c.restart(leader)
	nl := c.leader()
	waitFor(t, 10*time.Second, "the old leader to catch up", func() bool {
		return leader.store.AppliedIndex() >= nl.store.AppliedIndex()
	})
	for _, nd := range c.nodes {
		if it, _, err := nd.store.Read(ctxTimeout(t, 5*time.Second), "visits", ReadOptions{Level: Stale}); err != nil || string(it.Value) != "1" {
			t.Fatalf("%s: visits = %s, %v; want 1", nd.id, it.Value, err)
		}
	}
}

// TestTxnRequestWireRoundTrip: forwarding format 3 carries every field, and
// the leader refuses a frame that is not the one encoding of a request.
func TestTxnRequestWireRoundTrip(t *testing.T) {
	r := writeRequest{op: fsm.OpTxn, idemKey: "s\x00k", fingerprint: [32]byte{9}, txn: &txnRequest{
		checks: []fsm.TxnCheck{{Kind: fsm.TxnCheckVersion, Key: "a", Version: 7}, {Kind: fsm.TxnCheckValue, Key: "b", Value: []byte(`{"x":1}`)}},
		ops: []writeRequest{
			{op: fsm.OpSet, key: "a", value: []byte("1"), ttlMs: 60_000},
			{op: fsm.OpSet, key: "c", value: []byte("2"), keepTTL: true},
			{op: fsm.OpIncr, key: "n", by: -3},
			{op: fsm.OpTxnGet, key: "g"},
		},
	}}
	b := encodeWriteRequest(r)
	got, err := decodeWriteRequest(b)
	if err != nil || fmt.Sprintf("%+v", *got.txn) != fmt.Sprintf("%+v", *r.txn) || got.idemKey != r.idemKey || got.fingerprint != r.fingerprint {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for n := range len(b) {
		if _, err := decodeWriteRequest(b[:n]); err == nil {
			t.Fatalf("prefix %d of %d decoded", n, len(b))
		}
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] = 0x80 // an unterminated varint, then nothing
	if _, err := decodeWriteRequest(bad); err == nil {
		t.Fatal("a corrupt frame decoded")
	}
	tr := fsm.TxnResult{Status: fsm.StatusOK, Results: []interface{}{fsm.TxnGetResult{Found: true, Value: []byte("5"), Revision: 3}}}
	res, w, err := decodeWriteResponse(encodeWriteResponse(writeResult{index: 12, txn: &tr}, wireError{}, rpcFormatTxn))
	if err != nil || w.status != statusOK || w.msg != "" || res.index != 12 || res.txn == nil || fmt.Sprint(*res.txn) != fmt.Sprint(tr) {
		t.Fatalf("response round trip: %+v %v", res, err)
	}
}
