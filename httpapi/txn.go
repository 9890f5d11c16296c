package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/quorumkv/quorumkv/store"
)

// txnTemplate is the transaction route.
const txnTemplate = "/kv/txn"

// txnBody is POST /kv/txn's body. Every field of a check and an operation
// is read raw, so each mistake gets its own message.
type txnBody struct {
	Checks []txnCheckBody `json:"checks"`
	Ops    []txnOpBody    `json:"ops"`
}

type txnCheckBody struct {
	Key     *string         `json:"key"`
	Version json.RawMessage `json:"version"`
	Exists  *bool           `json:"exists"`
	Value   json.RawMessage `json:"value"`
}

type txnOpBody struct {
	Op         string          `json:"op"`
	Key        *string         `json:"key"`
	Value      json.RawMessage `json:"value"`
	TTLSeconds json.RawMessage `json:"ttlSeconds"`
	KeepTTL    bool            `json:"keepTtl"`
	By         json.RawMessage `json:"by"`
}

const txnShape = `send {"checks": [{"key": "a", "version": 12}, {"key": "b", "exists": false}, {"key": "c", "value": <JSON>}], "ops": [{"op": "put", "key": "a", "value": <JSON>, "ttlSeconds": 60}, {"op": "delete", "key": "b"}, {"op": "incr", "key": "n", "by": 1}, {"op": "patch", "key": "s", "ttlSeconds": 1800}, {"op": "get", "key": "d"}]}`

// parseTxnBody validates a transaction body and builds the store request.
// The store applies the same key, value, TTL and limit rules again.
func (a *api) parseTxnBody(body []byte) (store.TxnRequest, error) {
	var b txnBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return store.TxnRequest{}, errInvalidJSON(fmt.Sprintf("The transaction body is not valid (%s); %s.", clip(err.Error()), txnShape))
	}
	if _, err := dec.Token(); err != io.EOF {
		return store.TxnRequest{}, errInvalidJSON("The request body has data after the JSON object; send exactly one object.")
	}
	switch {
	case len(b.Ops) == 0:
		return store.TxnRequest{}, errInvalidJSON(`The transaction has no "ops"; ` + txnShape + ".")
	case len(b.Ops) > a.cfg.MaxTxnOps:
		return store.TxnRequest{}, errInvalidParameter(fmt.Sprintf("The transaction has %d operations; at most %d are allowed (--max-txn-ops). Split it, or ask the operator to raise the limit.", len(b.Ops), a.cfg.MaxTxnOps))
	case len(b.Checks) > a.cfg.MaxTxnChecks:
		return store.TxnRequest{}, errInvalidParameter(fmt.Sprintf("The transaction has %d checks; at most %d are allowed (--max-txn-checks).", len(b.Checks), a.cfg.MaxTxnChecks))
	}
	req := store.TxnRequest{Checks: make([]store.TxnCheck, len(b.Checks)), Ops: make([]store.TxnOp, len(b.Ops))}
	for i, c := range b.Checks {
		ch, err := parseTxnCheck(i, c)
		if err != nil {
			return store.TxnRequest{}, err
		}
		req.Checks[i] = ch
	}
	seen := make(map[string]int, len(b.Ops))
	for i, o := range b.Ops {
		op, err := parseTxnOp(i, o)
		if err != nil {
			return store.TxnRequest{}, err
		}
		if j, dup := seen[op.Key]; dup {
			return store.TxnRequest{}, errInvalidParameter(fmt.Sprintf("Operations %d and %d both use key %q; each key may appear at most once among the operations (checks may name any key).", j, i, clip(op.Key)))
		}
		seen[op.Key] = i
		req.Ops[i] = op
	}
	return req, nil
}

func parseTxnCheck(i int, c txnCheckBody) (store.TxnCheck, error) {
	where := fmt.Sprintf("Check %d", i)
	if c.Key == nil {
		return store.TxnCheck{}, errInvalidJSON(where + ` has no "key".`)
	}
	if err := store.CheckKey(*c.Key); err != nil {
		return store.TxnCheck{}, errInvalidKey(where + ": " + sentence(err))
	}
	n := 0
	for _, present := range []bool{c.Version != nil, c.Exists != nil, c.Value != nil} {
		if present {
			n++
		}
	}
	if n != 1 {
		return store.TxnCheck{}, errInvalidJSON(where + ` must compare exactly one of "version" (0: missing), "exists" (true or false) or "value".`)
	}
	ch := store.TxnCheck{Key: *c.Key}
	switch {
	case c.Version != nil:
		v, err := strconv.ParseUint(string(c.Version), 10, 64)
		if err != nil {
			return store.TxnCheck{}, errInvalidJSON(where + `: "version" must be a non-negative integer (a version from a read; 0 means the key must be missing).`)
		}
		ch.Kind, ch.Version = store.TxnCheckVersion, v
	case c.Exists != nil:
		ch.Kind = store.TxnCheckAbsent
		if *c.Exists {
			ch.Kind = store.TxnCheckExists
		}
	default:
		v, err := compactJSON(c.Value)
		if err != nil {
			return store.TxnCheck{}, errInvalidJSON(where + `: "value" is not valid JSON.`)
		}
		ch.Kind, ch.Value = store.TxnCheckValue, v
	}
	return ch, nil
}

func parseTxnOp(i int, o txnOpBody) (store.TxnOp, error) {
	where := fmt.Sprintf("Operation %d (%q)", i, clip(o.Op))
	if o.Key == nil {
		return store.TxnOp{}, errInvalidJSON(where + ` has no "key".`)
	}
	if err := store.CheckKey(*o.Key); err != nil {
		return store.TxnOp{}, errInvalidKey(where + ": " + sentence(err))
	}
	op := store.TxnOp{Kind: store.TxnOpKind(o.Op), Key: *o.Key, KeepTTL: o.KeepTTL}
	allowed := map[store.TxnOpKind]string{
		store.TxnPut: "value ttlSeconds keepTtl", store.TxnDelete: "", store.TxnIncr: "by ttlSeconds",
		store.TxnPatch: "ttlSeconds", store.TxnGet: "",
	}
	fields, ok := allowed[op.Kind]
	if !ok {
		return store.TxnOp{}, errInvalidJSON(fmt.Sprintf(`Operation %d has "op": %q; it must be "put", "delete", "incr", "patch" or "get".`, i, clip(o.Op)))
	}
	has := func(name string) bool { return bytes.Contains([]byte(" "+fields+" "), []byte(" "+name+" ")) }
	for name, present := range map[string]bool{"value": o.Value != nil, "ttlSeconds": o.TTLSeconds != nil, "keepTtl": o.KeepTTL, "by": o.By != nil} {
		if present && !has(name) {
			return store.TxnOp{}, errInvalidJSON(fmt.Sprintf("%s does not take %q.", where, name))
		}
	}
	var err error
	if o.TTLSeconds != nil {
		if op.TTL, err = parseTTL(o.TTLSeconds); err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return store.TxnOp{}, errInvalidTTL(where + ": " + ae.message)
			}
			return store.TxnOp{}, err
		}
	}
	switch op.Kind {
	case store.TxnPut:
		if o.Value == nil {
			return store.TxnOp{}, errInvalidJSON(where + ` has no "value"; use "value": null to store null.`)
		}
		if op.Value, err = compactJSON(o.Value); err != nil {
			return store.TxnOp{}, errInvalidJSON(where + `: "value" is not valid JSON.`)
		}
		if op.KeepTTL && op.TTL != 0 {
			return store.TxnOp{}, errInvalidTTL(where + ` has both "keepTtl" and "ttlSeconds"; keepTtl keeps the current expiry, so send one of them.`)
		}
	case store.TxnIncr:
		op.By = 1
		if o.By != nil {
			if op.By, err = parseInt64Field("by", o.By); err != nil {
				return store.TxnOp{}, err
			}
		}
	case store.TxnPatch:
		if o.TTLSeconds == nil {
			return store.TxnOp{}, errInvalidTTL(where + ` has no "ttlSeconds"; send a number to refresh the expiry or null to remove it.`)
		}
	}
	return op, nil
}

func compactJSON(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// txn serves POST /kv/txn: checks and operations on several keys applied at
// one log index, or nothing (412 txn_check_failed, 409 txn_op_failed). A
// transaction that only checks and reads is a linearizable read.
func (a *api) txn(r *http.Request) (reply, error) {
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	req, err := a.parseTxnBody(body)
	if err != nil {
		return reply{}, err
	}
	if len(r.Header.Values("If-Match")) > 0 {
		return reply{}, errInvalidPrecondition(`A transaction takes its conditions in "checks", not If-Match.`)
	}
	opts, err := writeOptions(r, false, "txn", body)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.Txn(r.Context(), req, opts)
	if err != nil {
		return reply{}, err
	}
	results := make([]any, len(res.Results))
	for i, o := range res.Results {
		results[i] = txnOpReply(o)
	}
	rep, err := dataReply(http.StatusOK, struct {
		Index   uint64 `json:"index"`
		Results []any  `json:"results"`
	}{res.Index, results})
	rep.header = writeHeaders(0, res.Index)
	return rep, err
}

// txnOpReply is one operation's result, shaped like the single-key reply
// of the same operation, with "op".
func txnOpReply(o store.TxnOpResult) any {
	switch o.Kind {
	case store.TxnDelete:
		return struct {
			Op      string `json:"op"`
			Key     string `json:"key"`
			Deleted bool   `json:"deleted"`
		}{string(o.Kind), o.Key, o.Deleted}
	case store.TxnIncr:
		return struct {
			Op        string `json:"op"`
			Key       string `json:"key"`
			Value     int64  `json:"value"`
			Version   uint64 `json:"version"`
			ExpiresAt expiry `json:"expiresAt"`
		}{string(o.Kind), o.Key, o.Int, o.Version, expiry(o.ExpiresAt)}
	case store.TxnGet:
		value := json.RawMessage("null")
		if o.Found {
			value = o.Value
		}
		return struct {
			Op        string          `json:"op"`
			Key       string          `json:"key"`
			Found     bool            `json:"found"`
			Value     json.RawMessage `json:"value"`
			Version   uint64          `json:"version"`
			ExpiresAt expiry          `json:"expiresAt"`
		}{string(o.Kind), o.Key, o.Found, value, o.Version, expiry(o.ExpiresAt)}
	default: // put, patch
		return struct {
			Op        string `json:"op"`
			Key       string `json:"key"`
			Version   uint64 `json:"version"`
			ExpiresAt expiry `json:"expiresAt"`
		}{string(o.Kind), o.Key, o.Version, expiry(o.ExpiresAt)}
	}
}

// txnError answers a failed transaction: 412 with every failed check, or
// 409 naming the operation that cannot apply.
func txnError(err error) (*apiError, bool) {
	var ce *store.TxnCheckError
	if errors.As(err, &ce) {
		fc := make([]txnFailedCheckBody, len(ce.Failed))
		for i, f := range ce.Failed {
			fc[i] = txnFailedCheckBody{Position: f.Position, Key: f.Key, CurrentVersion: versionOrNull(f.CurrentVersion)}
		}
		return &apiError{status: http.StatusPreconditionFailed, code: "txn_check_failed", failedChecks: fc,
			message: fmt.Sprintf("%d of the transaction's checks did not hold (see failedChecks: position, key, currentVersion, null when the key is missing); nothing was written. Read the keys, then retry with their current state.", len(fc))}, true
	}
	var oe *store.TxnOpError
	if errors.As(err, &oe) {
		reason, why := "", ""
		switch {
		case errors.Is(oe.Cause, store.ErrNotFound):
			reason, why = "not_found", "the key does not exist (a patch needs a live key)"
		case errors.Is(oe.Cause, store.ErrNotAnInteger):
			reason, why = "not_an_integer", "the key holds a value that is not a JSON integer within the signed 64-bit range"
		case errors.Is(oe.Cause, store.ErrOverflow):
			reason, why = "overflow", "the increment would leave the signed 64-bit range"
		case errors.Is(oe.Cause, store.ErrTxnReadTooLarge):
			reason, why = "read_too_large", "the values the get operations read together exceed the value limit; read them in smaller transactions"
		default:
			reason, why = "failed", oe.Cause.Error()
		}
		return &apiError{status: http.StatusConflict, code: "txn_op_failed",
			failedOp: &txnFailedOpBody{Position: oe.Position, Op: string(oe.Kind), Key: oe.Key, Reason: reason, CurrentVersion: versionOrNull(oe.CurrentVersion)},
			message:  fmt.Sprintf("Operation %d (%s %q) cannot apply: %s; nothing was written.", oe.Position, oe.Kind, clip(oe.Key), why)}, true
	}
	return nil, false
}

type txnFailedCheckBody struct {
	Position       int             `json:"position"`
	Key            string          `json:"key"`
	CurrentVersion json.RawMessage `json:"currentVersion"`
}

type txnFailedOpBody struct {
	Position       int             `json:"position"`
	Op             string          `json:"op"`
	Key            string          `json:"key"`
	Reason         string          `json:"reason"`
	CurrentVersion json.RawMessage `json:"currentVersion"`
}

func versionOrNull(v uint64) json.RawMessage {
	if v == 0 {
		return json.RawMessage("null")
	}
	return strconv.AppendUint(nil, v, 10)
}
