package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

// internals is what an unauthenticated /readyz must never show: the text of
// the store's error carries an index, an address and an id.
const internals = "applied index 41 behind 97 at leader n2 (10.0.0.2:9080)"

func TestReadyzReportsReadinessWithoutAKey(t *testing.T) {
	e := newTestEnv(t, nil)
	res := e.do("GET", "/readyz", "", "")
	if res.status != http.StatusOK || strings.TrimSpace(string(res.body)) != `{"data":{"status":"ready"}}` {
		t.Fatalf("ready node: %d %s", res.status, res.body)
	}
	for _, tc := range []struct {
		cause  error
		reason string
	}{
		{store.ErrNoLeader, "no_leader"},
		{fmt.Errorf("%w: %w", store.ErrTimeout, store.ErrCatchingUp), "catching_up"},
		{store.ErrTimeout, "leader_unconfirmed"},
		{store.ErrShuttingDown, "shutting_down"},
	} {
		e.st.setErr(fmt.Errorf("%w: %s", tc.cause, internals))
		res = e.do("GET", "/readyz", "", "")
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
			t.Fatalf("not ready (%v): %d %s", tc.cause, res.status, res.body)
		}
		var body struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(body.Error))
		for k := range body.Error {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"code", "message", "reason", "retryable"}) ||
			body.Error["code"] != "not_ready" || body.Error["reason"] != tc.reason {
			t.Fatalf("not ready (%v): body %s, want code not_ready and reason %s only", tc.cause, res.body, tc.reason)
		}
		for _, leak := range []string{"41", "97", "n2", "10.0.0.2", "9080", "index"} {
			if strings.Contains(string(res.body), leak) {
				t.Fatalf("unauthenticated /readyz shows %q: %s", leak, res.body)
			}
		}
	}
	// A clock outside the bound has its own code; the offsets (which peer,
	// by how much) stay out of this unauthenticated answer.
	e.st.setErr(fmt.Errorf("%w: n2's clock is 20m0s behind", store.ErrClockOffset))
	res = e.do("GET", "/readyz", "", "")
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"code":"clock_offset"`) || !strings.Contains(string(res.body), `"reason":"clock_offset"`) ||
		strings.Contains(string(res.body), "n2") || res.header.Get("Retry-After") == "" {
		t.Fatalf("clock out of bound: %d %s", res.status, res.body)
	}
	// A failed disk has its own code; the failing file and error stay out
	// of the unauthenticated answer too.
	e.st.setErr(fmt.Errorf("%w: store log entries failed: write /data/raft/raft.db: input/output error", store.ErrDiskFailed))
	res = e.do("GET", "/readyz", "", "")
	body := wantError(t, res, http.StatusServiceUnavailable, "disk_error")
	if !strings.Contains(string(res.body), `"reason":"disk"`) || strings.Contains(string(res.body), "raft.db") ||
		!body.Retryable || res.header.Get("Retry-After") == "" || !strings.Contains(body.Message, "wipe its data dir and rejoin") {
		t.Fatalf("disk failed: %d %s", res.status, res.body)
	}
}

// TestReadyzVerboseNeedsAKey: the detail stays available, to callers with a
// key that can read the cluster status.
func TestReadyzVerboseNeedsAKey(t *testing.T) {
	ring, err := NewKeyring([]APIKey{readKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.Keys = ring })
	e.st.setErr(fmt.Errorf("%w: %s", store.ErrNoLeader, internals))
	wantError(t, e.do("GET", "/readyz?verbose", "", ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, e.do("GET", "/readyz?verbose", "", "Bearer wrong-0123456789"), http.StatusUnauthorized, "unauthorized")
	for _, auth := range []string{bearer, "Bearer " + scopeSecrets[ScopeRead]} {
		res := e.do("GET", "/readyz?verbose", "", auth)
		body := wantError(t, res, http.StatusServiceUnavailable, "not_ready")
		if !strings.Contains(body.Message, internals) {
			t.Fatalf("verbose /readyz with a key hides the detail: %s", res.body)
		}
	}
	e.st.setErr(nil)
	if res := e.do("GET", "/readyz?verbose", "", bearer); res.status != http.StatusOK {
		t.Fatalf("ready, verbose: %d %s", res.status, res.body)
	}
}

// TestReadyzQuotaDetail: a node whose storage quota is reached stays ready
// (it serves reads and deletes) and says why writes are refused.
func TestReadyzQuotaDetail(t *testing.T) {
	e := newTestEnv(t, nil)
	e.st.quota = store.QuotaStatus{Keys: 10, MaxKeys: 10, DataBytes: 100, MaxData: 1 << 20}
	res := e.do("GET", "/readyz", "", "")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"ready"`) ||
		!strings.Contains(string(res.body), "storage quota reached") {
		t.Fatalf("full node: %d %s", res.status, res.body)
	}
	e.st.quota.Keys = 9
	res = e.do("GET", "/readyz", "", "")
	if res.status != http.StatusOK || strings.Contains(string(res.body), "detail") {
		t.Fatalf("node under its quota: %d %s", res.status, res.body)
	}
}
