package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzHandler throws arbitrary method × path × Authorization × body
// combinations at the whole router. It must never panic or answer 500, every
// answer must be JSON with the envelope, and an unauthenticated request must
// never reach the store.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, path, auth, body string }{
		{"GET", "/kv/items/a", bearer, ""},
		{"PUT", "/kv/items/a%2Fb", bearer, `{"value":1,"ttlSeconds":2}`},
		{"PATCH", "/kv/items/a", bearer, `{"ttlSeconds":null}`},
		{"POST", "/kv/items/a/incr", bearer, `{"by":-3}`},
		{"DELETE", "/kv/items?prefix=a", bearer, ""},
		{"GET", "/kv/items?prefix=%ff&limit=-1&cursor=@@", bearer, ""},
		{"GET", "/kv/items/a?consistency=stale&minIndex=99999999999999999999", bearer, ""},
		{"PUT", "/kv/items/a", "Bearer wrong", `{"value":1}`},
		{"PUT", "/kv/items/a", "", `{"value":1}`},
		{"GET", "/cluster/status", "Basic Zm9vOmJhcg==", ""},
		{"OPTIONS", "/healthz", "", ""},
		{"GET", "/readyz", "", ""},
		{"BREW", "/kv/items/%00", bearer, "\x00\xff"},
	} {
		f.Add(s.method, s.path, s.auth, []byte(s.body))
	}
	st := newFakeStore()
	h, err := New(Config{APIKey: testAPIKey, MaxValueBytes: 4096}, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte) {
		req, err := http.NewRequest(method, "http://node"+path, bytes.NewReader(body))
		if err != nil || req.URL.Path == "" || path == "" || path[0] != '/' {
			return // not a request an HTTP server would parse
		}
		req.Header.Set("Authorization", auth)
		calls := st.callCount()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q auth %q: status %d %s", method, path, auth, rec.Code, rec.Body)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || (env["data"] == nil && env["error"] == nil) {
			t.Fatalf("%s %q: body is not the JSON envelope: %q", method, path, rec.Body)
		}
		if rec.Code == http.StatusUnauthorized && st.callCount() != calls {
			t.Fatalf("%s %q: store reached by an unauthenticated request", method, path)
		}
	})
}
