package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

func TestTxnLoginWritesSessionAndIndexTogether(t *testing.T) {
	fake := kvfake.New()
	nodes := startNodes(t, fake, nil)
	c := newClient(t, urls(nodes))
	ctx := context.Background()
	login := client.Txn{
		Checks: []client.TxnCheck{client.CheckExists("session/abc", false)},
		Ops: []client.TxnOp{
			client.TxnPut("session/abc", json.RawMessage(`{"user":42}`), 30*time.Minute),
			client.TxnPut("user/42/session", json.RawMessage(`"abc"`), 30*time.Minute),
			client.TxnIncr("user/42/logins", 1, 0),
		},
	}
	res, err := c.Txn(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 3 || res.Results[0].Version != res.Index || res.Results[0].ExpiresAt == nil || string(res.Results[2].Value) != "1" {
		t.Fatalf("result %+v", res)
	}
	// The same login again: the check fails and names itself.
	_, err = c.Txn(ctx, login)
	checks, _ := client.TxnFailure(err)
	if !errors.Is(err, client.ErrTxnCheckFailed) || len(checks) != 1 || checks[0].Key != "session/abc" || checks[0].CurrentVersion == nil || *checks[0].CurrentVersion != res.Index {
		t.Fatalf("second login: %v, %+v", err, checks)
	}
	// A consistent read of both keys, with a version check.
	read, err := c.Txn(ctx, client.Txn{
		Checks: []client.TxnCheck{client.CheckVersion("user/42/session", res.Index), client.CheckValue("user/42/session", json.RawMessage(`"abc"`))},
		Ops:    []client.TxnOp{client.TxnGet("session/abc"), client.TxnGet("nobody")},
	})
	if err != nil || !read.Results[0].Found || string(read.Results[0].Value) != `{"user":42}` || read.Results[1].Found {
		t.Fatalf("read: %+v, %v", read, err)
	}
	// Logout: patch of a missing key fails the whole transaction.
	_, err = c.Txn(ctx, client.Txn{Ops: []client.TxnOp{client.TxnDelete("session/abc"), client.TxnPatch("session/zzz", time.Minute)}})
	if _, op := client.TxnFailure(err); !errors.Is(err, client.ErrTxnOpFailed) || op == nil || op.Position != 1 || op.Reason != "not_found" {
		t.Fatalf("patch of a missing key: %v %+v", err, op)
	}
	if _, err := c.Get(ctx, "session/abc"); err != nil {
		t.Fatalf("the failed transaction deleted the session: %v", err)
	}
	if _, err := c.Txn(ctx, client.Txn{Ops: []client.TxnOp{client.TxnGet("a")}}, client.IdempotencyKey("k")); !errors.Is(err, client.ErrInvalidOption) {
		t.Fatalf("gets with an idempotency key: %v", err)
	}
}

// A write-only transaction is retried after an unknown outcome with its
// generated Idempotency-Key and applies once.
func TestTxnRetriedOnceAfterUnknownOutcome(t *testing.T) {
	fake := kvfake.New()
	nodes := startNodes(t, fake, always(kvfake.OutcomeUnknown), nil)
	c := newClient(t, urls(nodes))
	res, err := c.Txn(context.Background(), client.Txn{Ops: []client.TxnOp{client.TxnIncr("n", 1, 0), client.TxnIncr("m", 2, 0)}})
	if err != nil || string(res.Results[0].Value) != "1" || string(res.Results[1].Value) != "2" {
		t.Fatalf("txn: %+v, %v; want one application", res, err)
	}
}
