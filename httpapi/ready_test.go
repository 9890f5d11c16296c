package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

func TestReadyzReportsReadinessWithoutAKey(t *testing.T) {
	e := newTestEnv(t, nil)
	res := e.do("GET", "/readyz", "", "")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"ready"`) {
		t.Fatalf("ready node: %d %s", res.status, res.body)
	}
	for _, cause := range []error{store.ErrNoLeader, store.ErrTimeout} {
		e.st.setErr(fmt.Errorf("%w: because", cause))
		res = e.do("GET", "/readyz", "", "")
		if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"not_ready"`) ||
			!strings.Contains(string(res.body), "because") || res.header.Get("Retry-After") == "" {
			t.Fatalf("not ready (%v): %d %s", cause, res.status, res.body)
		}
	}
	// A clock outside the bound has its own code; the offsets (which peer,
	// by how much) stay out of this unauthenticated answer.
	e.st.setErr(fmt.Errorf("%w: n2's clock is 20m0s behind", store.ErrClockOffset))
	res = e.do("GET", "/readyz", "", "")
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"code":"clock_offset"`) ||
		strings.Contains(string(res.body), "n2") || res.header.Get("Retry-After") == "" {
		t.Fatalf("clock out of bound: %d %s", res.status, res.body)
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
