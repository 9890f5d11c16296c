package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

// TestStoreRefusalsMapToClientErrors: a write the store (or the leader)
// refuses by its rules answers the same 4xx as when this layer finds the
// problem, with the store's reason, never 500.
func TestStoreRefusalsMapToClientErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrInvalidKey, 400, "invalid_key"},
		{store.ErrInvalidPrefix, 400, "invalid_parameter"},
		{store.ErrInvalidValue, 400, "invalid_json"},
		{store.ErrValueTooLarge, 413, "too_large"},
		{store.ErrInvalidTTL, 400, "invalid_ttl"},
		{store.ErrInvalidIdempotencyKey, 400, "invalid_idempotency_key"},
		{store.ErrInvalidWrite, 400, "invalid_parameter"},
	} {
		ie := &store.InvalidError{Err: tc.err, Reason: "the thing is wrong"}
		resp, internal := resolveError(fmt.Errorf("store: %w", ie))
		if internal || resp.status != tc.status || resp.code != tc.code || !strings.HasPrefix(resp.message, "The thing is wrong.") {
			t.Errorf("%v: got %d %s %q (internal %v), want %d %s with the reason", tc.err, resp.status, resp.code, resp.message, internal, tc.status, tc.code)
		}
	}
}
