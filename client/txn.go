package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Txn is a transaction for Client.Txn: every check must hold, then every
// operation applies at one log index, or nothing changes. No key may appear
// twice among Ops (checks may name any key). Build it as a plain struct:
//
//	client.Txn{
//		Checks: []client.TxnCheck{client.CheckVersion("user/42", v), client.CheckExists("session/abc", false)},
//		Ops: []client.TxnOp{
//			client.TxnPut("session/abc", session, 30*time.Minute),
//			client.TxnPut("user/42/session", json.RawMessage(`"abc"`), 30*time.Minute),
//		},
//	}
type Txn struct {
	Checks []TxnCheck `json:"checks,omitempty"`
	Ops    []TxnOp    `json:"ops"`
}

// TxnCheck is one condition of a transaction; it compares exactly one of
// Version (the key's live version; 0: the key must be missing), Exists or
// Value (the stored JSON, compared compact and byte for byte). Build it with
// CheckVersion, CheckExists or CheckValue.
type TxnCheck struct {
	Key     string          `json:"key"`
	Version *uint64         `json:"version,omitempty"`
	Exists  *bool           `json:"exists,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// CheckVersion holds when key's live version is version (0: key missing).
func CheckVersion(key string, version uint64) TxnCheck {
	return TxnCheck{Key: key, Version: &version}
}

// CheckExists holds when key is live (exists) or missing (!exists).
func CheckExists(key string, exists bool) TxnCheck {
	return TxnCheck{Key: key, Exists: &exists}
}

// CheckValue holds when key is live and holds value.
func CheckValue(key string, value json.RawMessage) TxnCheck {
	return TxnCheck{Key: key, Value: value}
}

// TxnOp is one operation of a transaction; build it with TxnPut,
// TxnPutKeepTTL, TxnDelete, TxnIncr, TxnPatch or TxnGet.
type TxnOp struct {
	Op      string          `json:"op"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value,omitempty"`
	TTL     time.Duration   `json:"-"` // put, incr (on creation), patch (0: remove the expiry)
	KeepTTL bool            `json:"keepTtl,omitempty"`
	By      *int64          `json:"by,omitempty"`
}

// TxnPut stores value at key; ttl 0 means no expiry.
func TxnPut(key string, value json.RawMessage, ttl time.Duration) TxnOp {
	return TxnOp{Op: "put", Key: key, Value: value, TTL: ttl}
}

// TxnPutKeepTTL stores value at key keeping the live key's expiry.
func TxnPutKeepTTL(key string, value json.RawMessage) TxnOp {
	return TxnOp{Op: "put", Key: key, Value: value, KeepTTL: true}
}

// TxnDelete removes key (a missing key is not an error).
func TxnDelete(key string) TxnOp { return TxnOp{Op: "delete", Key: key} }

// TxnIncr adds by to the integer at key (missing: from 0, expiring after ttl
// when ttl > 0).
func TxnIncr(key string, by int64, ttl time.Duration) TxnOp {
	return TxnOp{Op: "incr", Key: key, By: &by, TTL: ttl}
}

// TxnPatch replaces a live key's expiry (ttl 0: none); a missing key makes
// the whole transaction fail with ErrTxnOpFailed.
func TxnPatch(key string, ttl time.Duration) TxnOp {
	return TxnOp{Op: "patch", Key: key, TTL: ttl}
}

// TxnGet reads key at the transaction's index.
func TxnGet(key string) TxnOp { return TxnOp{Op: "get", Key: key} }

// MarshalJSON writes the operation as POST /kv/txn takes it (TTL as
// "ttlSeconds"; a patch always carries it, null for none).
func (op TxnOp) MarshalJSON() ([]byte, error) {
	type plain TxnOp
	out := struct {
		plain
		TTLSeconds json.RawMessage `json:"ttlSeconds,omitempty"`
	}{plain: plain(op)}
	switch {
	case op.TTL != 0:
		s, err := ttlSeconds(op.TTL)
		if err != nil {
			return nil, err
		}
		out.TTLSeconds = json.RawMessage(s)
	case op.Op == "patch":
		out.TTLSeconds = json.RawMessage("null")
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads an operation as POST /kv/txn takes it, "ttlSeconds"
// included (a number of seconds, or null), so a request body can be loaded
// into a Txn. Unknown fields are refused.
func (op *TxnOp) UnmarshalJSON(b []byte) error {
	type plain TxnOp
	var in struct {
		plain
		TTLSeconds *float64 `json:"ttlSeconds"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	*op = TxnOp(in.plain)
	if in.TTLSeconds != nil {
		if *in.TTLSeconds < 0 || *in.TTLSeconds > 315_576_000 {
			return fmt.Errorf("ttlSeconds %v is outside 0 to 10 years", *in.TTLSeconds)
		}
		op.TTL = time.Duration(*in.TTLSeconds * float64(time.Second)).Round(time.Millisecond)
	}
	return nil
}

// TxnResult is an applied transaction: the log index it applied at (for a
// transaction without writes, the index it was read at) and one result per
// operation, in order.
type TxnResult struct {
	Index   uint64
	Results []TxnOpResult
}

// TxnOpResult is one operation's result. Version and ExpiresAt: the key's
// new version and expiry (get: the stored ones). Value: get's stored JSON
// (null when not Found), incr's new value.
type TxnOpResult struct {
	Op        string          `json:"op"`
	Key       string          `json:"key"`
	Version   uint64          `json:"version"`
	ExpiresAt *time.Time      `json:"expiresAt"`
	Deleted   bool            `json:"deleted"`
	Found     bool            `json:"found"`
	Value     json.RawMessage `json:"value"`
}

// TxnFailedCheck is a check that did not hold (412 txn_check_failed).
type TxnFailedCheck struct {
	Position       int     `json:"position"`
	Key            string  `json:"key"`
	CurrentVersion *uint64 `json:"currentVersion"` // nil: the key is missing
}

// TxnFailedOp is the operation that could not apply (409 txn_op_failed);
// Reason is not_found, not_an_integer, overflow or read_too_large.
type TxnFailedOp struct {
	Position       int     `json:"position"`
	Op             string  `json:"op"`
	Key            string  `json:"key"`
	Reason         string  `json:"reason"`
	CurrentVersion *uint64 `json:"currentVersion"`
}

// TxnFailure returns the failed checks or the failed operation a
// transaction's error carries (both nil for any other error).
func TxnFailure(err error) ([]TxnFailedCheck, *TxnFailedOp) {
	var ae *APIError
	if !errors.As(err, &ae) {
		return nil, nil
	}
	return ae.FailedChecks, ae.FailedOp
}

// Txn applies t: every check holds and every operation applies at one log
// index, or nothing is written and the error is ErrTxnCheckFailed (see
// TxnFailure for the checks) or ErrTxnOpFailed. A transaction without get
// operations carries an Idempotency-Key (IdempotencyKey, or one generated),
// so the client retries it safely; with gets it is retried only when the
// failure proves nothing happened (the server keeps no values for a replay).
// A transaction of only checks and gets is a linearizable read. Options:
// IdempotencyKey.
func (c *Client) Txn(ctx context.Context, t Txn, opts ...Option) (TxnResult, error) {
	o, err := collect("Txn", optIdempotencyKey, opts)
	if err != nil {
		return TxnResult{}, err
	}
	reads, writes := false, false
	for _, op := range t.Ops {
		if op.Op == "get" {
			reads = true
		} else {
			writes = true
		}
	}
	if reads && o.has(optIdempotencyKey) {
		return TxnResult{}, fmt.Errorf("client: Txn: a transaction with get operations cannot carry an IdempotencyKey: %w", ErrInvalidOption)
	}
	body, err := json.Marshal(t)
	if err != nil {
		return TxnResult{}, fmt.Errorf("client: Txn: %v: %w", err, ErrInvalidOption)
	}
	cl := &call{method: http.MethodPost, path: "/kv/txn", body: body, header: http.Header{}, replayable: !writes}
	if !reads {
		cl.header, cl.replayable = writeHeader(o), true
	}
	res, err := c.do(ctx, cl)
	if err != nil {
		return TxnResult{}, err
	}
	var d struct {
		Index   uint64        `json:"index"`
		Results []TxnOpResult `json:"results"`
	}
	if err := decodeData(res, &d); err != nil {
		return TxnResult{}, err
	}
	return TxnResult{Index: d.Index, Results: d.Results}, nil
}
