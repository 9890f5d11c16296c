package httpapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

// TestOutcomeUnknownRetryableOnlyWhenSafe: a write whose outcome is unknown is
// marked retryable (with Retry-After) only when sending it again cannot apply
// it twice or fail after it succeeded.
func TestOutcomeUnknownRetryableOnlyWhenSafe(t *testing.T) {
	e := newTestEnv(t, nil)
	idem := map[string]string{"Idempotency-Key": "op-7f3a"}
	ifMatch := map[string]string{"If-Match": `"3"`}
	create := map[string]string{"If-None-Match": "*"}
	both := map[string]string{"If-Match": `"3"`, "Idempotency-Key": "op-7f3b"}
	for _, tc := range []struct {
		method, path, body string
		hdr                map[string]string
		safe               bool
	}{
		{"PUT", "/kv/items/k", `{"value": 1}`, nil, true},
		{"PUT", "/kv/items/k", `{"value": 1}`, idem, true},
		{"PUT", "/kv/items/k", `{"value": 1}`, ifMatch, false},
		{"PUT", "/kv/items/k", `{"value": 1}`, create, false},
		{"PUT", "/kv/items/k", `{"value": 1}`, both, true},
		{"DELETE", "/kv/items/k", "", nil, true},
		{"DELETE", "/kv/items/k", "", ifMatch, false},
		{"DELETE", "/kv/items/k", "", both, true},
		{"PATCH", "/kv/items/k", `{"ttlSeconds": 5}`, nil, true},
		{"PATCH", "/kv/items/k", `{"ttlSeconds": 5}`, ifMatch, false},
		{"POST", "/kv/items/k/incr", "", nil, false},
		{"POST", "/kv/items/k/incr", "", idem, true},
		{"DELETE", "/kv/items?prefix=a", "", nil, true},
		{"GET", "/kv/items/k", "", nil, true},
		{"POST", "/cluster/nodes", `{"id":"n4","peerAddr":"h:1"}`, nil, true},
		{"POST", "/cluster/leader/transfer", "", nil, false},
		{"DELETE", "/cluster/nodes/n4", "", nil, false},
		{"POST", "/admin/restore", "backup", nil, false},
		{"POST", "/admin/restore", "backup", idem, false}, // restore ignores Idempotency-Key
	} {
		// Outcome unknown wins over a deadline carried alongside it.
		for _, err := range []error{store.ErrOutcomeUnknown, errors.Join(context.DeadlineExceeded, store.ErrOutcomeUnknown)} {
			e.st.setErr(fmt.Errorf("store: forwarded to n2, no answer: %w", err))
			res := e.doH(tc.method, tc.path, tc.body, bearer, tc.hdr)
			eb := wantError(t, res, 503, "outcome_unknown")
			if eb.Retryable != tc.safe || (res.header.Get("Retry-After") != "") != tc.safe {
				t.Errorf("%s %s %v: retryable %v, Retry-After %q; want retryable %v", tc.method, tc.path, tc.hdr, eb.Retryable, res.header.Get("Retry-After"), tc.safe)
			}
		}
	}
}
