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
