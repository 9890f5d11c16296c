package httpapi

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

func TestTxnParsesEveryCheckAndOp(t *testing.T) {
	e := newTestEnv(t, nil)
	body := `{"checks": [{"key": "a", "version": 12}, {"key": "b", "exists": false}, {"key": "c", "exists": true}, {"key": "v", "value": { "x" : [1, 2] }}],
	  "ops": [{"op": "put", "key": "a", "value": {"n": 1}, "ttlSeconds": 60},
	          {"op": "put", "key": "c", "value": 2, "keepTtl": true},
	          {"op": "delete", "key": "b"},
	          {"op": "incr", "key": "n", "by": 5},
	          {"op": "patch", "key": "s", "ttlSeconds": 1800},
	          {"op": "get", "key": "d"}]}`
	res := e.doH("POST", "/kv/txn", body, bearer, map[string]string{"Idempotency-Key": "login-1"})
	var data struct {
		Index   uint64           `json:"index"`
		Results []map[string]any `json:"results"`
	}
	wantData(t, res, http.StatusOK, &data)
	want := store.TxnRequest{
		Checks: []store.TxnCheck{
			{Kind: store.TxnCheckVersion, Key: "a", Version: 12},
			{Kind: store.TxnCheckAbsent, Key: "b"},
			{Kind: store.TxnCheckExists, Key: "c"},
			{Kind: store.TxnCheckValue, Key: "v", Value: []byte(`{"x":[1,2]}`)},
		},
		Ops: []store.TxnOp{
			{Kind: store.TxnPut, Key: "a", Value: []byte(`{"n":1}`), TTL: time.Minute},
			{Kind: store.TxnPut, Key: "c", Value: []byte("2"), KeepTTL: true},
			{Kind: store.TxnDelete, Key: "b"},
			{Kind: store.TxnIncr, Key: "n", By: 5},
			{Kind: store.TxnPatch, Key: "s", TTL: 30 * time.Minute},
			{Kind: store.TxnGet, Key: "d"},
		},
	}
	if !reflect.DeepEqual(e.st.lastTxn, want) {
		t.Fatalf("store got\n %+v\nwant\n %+v", e.st.lastTxn, want)
	}
	if e.st.lastOpts.IdempotencyKey != "login-1" || e.st.lastOpts.Fingerprint == [32]byte{} {
		t.Fatalf("Idempotency-Key not passed: %+v", e.st.lastOpts)
	}
	if data.Index != e.st.version || len(data.Results) != 6 || res.header.Get("X-KV-Index") != fmt.Sprint(data.Index) {
		t.Fatalf("reply %s, headers %v", res.body, res.header)
	}
	for i, op := range []string{"put", "put", "delete", "incr", "patch", "get"} {
		if data.Results[i]["op"] != op {
			t.Fatalf("result %d is %v, want op %s", i, data.Results[i], op)
		}
	}
	if _, ok := data.Results[5]["found"]; !ok {
		t.Fatalf("get result without found: %v", data.Results[5])
	}
}

func TestTxnRejectsBadBodies(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxTxnOps, c.MaxTxnChecks = 3, 2 })
	ops := func(n int) string {
		var b []string
		for i := range n {
			b = append(b, fmt.Sprintf(`{"op":"delete","key":"k%d"}`, i))
		}
		return strings.Join(b, ",")
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code, says string
	}{
		{"not JSON", `{"ops": [`, 400, "invalid_json", "not valid"},
		{"unknown field", `{"ops": [{"op": "delete", "key": "a"}], "compare": []}`, 400, "invalid_json", "compare"},
		{"no ops", `{"checks": [{"key": "a", "exists": true}]}`, 400, "invalid_json", `no "ops"`},
		{"too many ops", `{"ops": [` + ops(4) + `]}`, 400, "invalid_parameter", "--max-txn-ops"},
		{"too many checks", `{"checks": [{"key":"a","exists":true},{"key":"b","exists":true},{"key":"c","exists":true}], "ops": [` + ops(1) + `]}`, 400, "invalid_parameter", "--max-txn-checks"},
		{"key twice", `{"ops": [{"op":"put","key":"a","value":1},{"op":"get","key":"a"}]}`, 400, "invalid_parameter", "at most once"},
		{"unknown op", `{"ops": [{"op":"cas","key":"a"}]}`, 400, "invalid_json", `"cas"`},
		{"op field it does not take", `{"ops": [{"op":"delete","key":"a","value":1}]}`, 400, "invalid_json", `"value"`},
		{"put without value", `{"ops": [{"op":"put","key":"a"}]}`, 400, "invalid_json", `no "value"`},
		{"patch without ttl", `{"ops": [{"op":"patch","key":"a"}]}`, 400, "invalid_ttl", "ttlSeconds"},
		{"keepTtl with ttl", `{"ops": [{"op":"put","key":"a","value":1,"keepTtl":true,"ttlSeconds":5}]}`, 400, "invalid_ttl", "keepTtl"},
		{"bad ttl", `{"ops": [{"op":"put","key":"a","value":1,"ttlSeconds":-1}]}`, 400, "invalid_ttl", "Operation 0"},
		{"bad by", `{"ops": [{"op":"incr","key":"a","by":1.5}]}`, 400, "invalid_json", "by"},
		{"missing key", `{"ops": [{"op":"get"}]}`, 400, "invalid_json", `no "key"`},
		{"empty key", `{"ops": [{"op":"get","key":""}]}`, 400, "invalid_key", "empty"},
		{"check of two things", `{"checks": [{"key":"a","version":1,"exists":true}], "ops": [` + ops(1) + `]}`, 400, "invalid_json", "exactly one"},
		{"check negative version", `{"checks": [{"key":"a","version":-1}], "ops": [` + ops(1) + `]}`, 400, "invalid_json", "non-negative"},
		{"trailing data", `{"ops": [` + ops(1) + `]} {}`, 400, "invalid_json", "after the JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := e.st.calls
			body := wantError(t, e.do("POST", "/kv/txn", tc.body, bearer), tc.status, tc.code)
			if !strings.Contains(body.Message, tc.says) {
				t.Errorf("message %q does not say %q", body.Message, tc.says)
			}
			if e.st.calls != calls {
				t.Error("a refused body reached the store")
			}
		})
	}
	big := `{"ops": [{"op":"put","key":"a","value":"` + strings.Repeat("x", int(DefaultMaxValueBytes+envelopeAllowance)) + `"}]}`
	wantError(t, e.do("POST", "/kv/txn", big, bearer), http.StatusRequestEntityTooLarge, "too_large")
}

func TestTxnFailuresNameTheCause(t *testing.T) {
	e := newTestEnv(t, nil)
	body := `{"checks": [{"key": "a", "version": 3}, {"key": "b", "exists": true}], "ops": [{"op": "incr", "key": "a"}]}`
	e.st.txnErr = &store.TxnCheckError{Failed: []store.TxnFailedCheck{{Position: 0, Key: "a", CurrentVersion: 7}, {Position: 1, Key: "b"}}}
	got := wantError(t, e.do("POST", "/kv/txn", body, bearer), http.StatusPreconditionFailed, "txn_check_failed")
	want := []txnFailedCheckBody{{0, "a", []byte("7")}, {1, "b", []byte("null")}}
	if !reflect.DeepEqual(got.FailedChecks, want) {
		t.Fatalf("failedChecks = %+v, want %+v", got.FailedChecks, want)
	}
	e.st.txnErr = &store.TxnOpError{Position: 0, Kind: store.TxnIncr, Key: "a", Cause: store.ErrNotAnInteger, CurrentVersion: 7}
	got = wantError(t, e.do("POST", "/kv/txn", body, bearer), http.StatusConflict, "txn_op_failed")
	if got.FailedOp == nil || got.FailedOp.Op != "incr" || got.FailedOp.Reason != "not_an_integer" || !strings.Contains(got.Message, `incr "a"`) {
		t.Fatalf("failedOp = %+v, message %q", got.FailedOp, got.Message)
	}
	e.st.txnErr = fmt.Errorf("%w: leader lost", store.ErrOutcomeUnknown)
	if b := wantError(t, e.doH("POST", "/kv/txn", body, bearer, map[string]string{"Idempotency-Key": "k1"}), 503, "outcome_unknown"); !b.Retryable {
		t.Fatal("an unknown outcome with an Idempotency-Key must be retryable")
	}
	if b := wantError(t, e.do("POST", "/kv/txn", body, bearer), 503, "outcome_unknown"); b.Retryable {
		t.Fatal("an unknown outcome without an Idempotency-Key must not be retryable")
	}
}
