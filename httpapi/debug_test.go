package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// digestingStore is a fake store that also reports a state digest.
type digestingStore struct{ *fakeStore }

func (digestingStore) StateHash() string    { return "abc123" }
func (digestingStore) AppliedIndex() uint64 { return 42 }

func TestDebugState(t *testing.T) {
	h, err := New(Config{APIKey: testAPIKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, digestingStore{newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/debug/state", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", code)
	}
	code, body := get(bearer)
	if code != http.StatusOK || strings.TrimSpace(body) != `{"data":{"appliedIndex":42,"stateHash":"abc123"}}` {
		t.Fatalf("got %d %s", code, body)
	}

	// A store without a digest answers 404.
	e := newTestEnv(t, nil)
	if r := e.do(http.MethodGet, "/debug/state", "", bearer); r.status != http.StatusNotFound {
		t.Fatalf("fake store without digest: %d %s", r.status, r.body)
	}
}
