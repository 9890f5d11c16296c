package kvfake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client/kvfake"
	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
)

// The conformance table: one script of requests, each with the answer the
// real server gives (status, error code, data fields, headers). It runs
// against the real HTTP API over a real single-node store and against the
// fake; where they differ, the real server is right and the fake is fixed.
//
// Values that depend on the log (versions, indexes) are not compared; that
// an ETag names the version the body gives is checked on every answer.

const (
	readKey  = "conformance-read"
	writeKey = "conformance-write"
	adminKey = "conformance-admin"
)

// present matches any non-null JSON value.
const present = "<present>"

type step struct {
	name   string
	method string
	path   string
	key    string // API key secret; "" sends none
	header map[string]string
	body   string

	status  int
	code    string         // error.code, for an error answer
	data    map[string]any // fields of "data" (JSON values; present: any non-null)
	headers []string       // headers the answer must carry
}

var conformance = []step{
	{name: "health", method: "GET", path: "/healthz", status: 200, data: map[string]any{"status": "ok"}},
	{name: "no key", method: "GET", path: "/kv/items/a", status: 401, code: "unauthorized", headers: []string{"WWW-Authenticate"}},
	{name: "wrong key", method: "GET", path: "/kv/items/a", key: "nope", status: 401, code: "unauthorized"},
	{name: "read key cannot write", method: "PUT", path: "/kv/items/a", key: readKey, body: `{"value":1}`, status: 403, code: "forbidden"},
	{name: "write key cannot administer", method: "GET", path: "/admin/snapshot", key: writeKey, status: 403, code: "forbidden"},
	{name: "read key lists nodes", method: "GET", path: "/cluster/nodes", key: readKey, status: 200, data: map[string]any{"nodes": present}},

	{name: "create", method: "PUT", path: "/kv/items/a", key: writeKey, body: `{"value": {"x": 1}}`, status: 201,
		data: map[string]any{"key": "a", "version": present, "expiresAt": nil}, headers: []string{"ETag", "X-KV-Index"}},
	{name: "replace", method: "PUT", path: "/kv/items/a", key: writeKey, body: `{"value":{"x":2, "y":[1,2]}}`, status: 200,
		data: map[string]any{"key": "a", "version": present}, headers: []string{"ETag", "X-KV-Index"}},
	{name: "get", method: "GET", path: "/kv/items/a", key: readKey, status: 200,
		data:    map[string]any{"key": "a", "value": map[string]any{"x": 2, "y": []any{1, 2}}, "version": present, "expiresAt": nil, "ttlRemainingMs": nil},
		headers: []string{"ETag", "X-KV-Index"}},
	{name: "request id echoed", method: "GET", path: "/kv/items/a", key: readKey, header: map[string]string{"X-Request-Id": "trace-42"}, status: 200,
		data: map[string]any{"key": "a"}},
	{name: "get missing", method: "GET", path: "/kv/items/missing", key: readKey, status: 404, code: "not_found"},
	{name: "key with an escaped slash", method: "PUT", path: "/kv/items/dir%2Fname", key: writeKey, body: `{"value":"s"}`, status: 201,
		data: map[string]any{"key": "dir/name"}},
	{name: "no value", method: "PUT", path: "/kv/items/b", key: writeKey, body: `{}`, status: 400, code: "missing_value"},
	{name: "not JSON", method: "PUT", path: "/kv/items/b", key: writeKey, body: `{"value":`, status: 400, code: "invalid_json"},
	{name: "bad ttl", method: "PUT", path: "/kv/items/b", key: writeKey, body: `{"value":1,"ttlSeconds":-3}`, status: 400, code: "invalid_ttl"},
	{name: "if-match fails", method: "PUT", path: "/kv/items/a", key: writeKey, header: map[string]string{"If-Match": `"999999"`},
		body: `{"value":3}`, status: 412, code: "version_mismatch"},
	{name: "if-none-match on a live key", method: "PUT", path: "/kv/items/a", key: writeKey, header: map[string]string{"If-None-Match": "*"},
		body: `{"value":3}`, status: 412, code: "already_exists"},
	{name: "create with ttl", method: "PUT", path: "/kv/items/t", key: writeKey, body: `{"value":"x","ttlSeconds":60}`, status: 201,
		data: map[string]any{"key": "t", "expiresAt": present}},
	{name: "get with ttl", method: "GET", path: "/kv/items/t", key: readKey, status: 200,
		data: map[string]any{"value": "x", "expiresAt": present, "ttlRemainingMs": present}},
	{name: "patch ttl away", method: "PATCH", path: "/kv/items/t", key: writeKey, body: `{"ttlSeconds":null}`, status: 200,
		data: map[string]any{"key": "t", "expiresAt": nil}, headers: []string{"ETag"}},
	{name: "patch missing", method: "PATCH", path: "/kv/items/missing", key: writeKey, body: `{"ttlSeconds":5}`, status: 404, code: "not_found"},
	{name: "incr creates", method: "POST", path: "/kv/items/c/incr", key: writeKey, body: `{"by":5}`, status: 200,
		data: map[string]any{"key": "c", "value": 5}, headers: []string{"ETag"}},
	{name: "incr adds", method: "POST", path: "/kv/items/c/incr", key: writeKey, body: `{"by":-7}`, status: 200,
		data: map[string]any{"value": -2}},
	{name: "incr a non-integer", method: "POST", path: "/kv/items/a/incr", key: writeKey, body: `{}`, status: 409, code: "not_an_integer"},
	{name: "method not allowed", method: "POST", path: "/kv/items/a", key: writeKey, body: `{}`, status: 405, code: "method_not_allowed",
		headers: []string{"Allow"}},
	{name: "list a page", method: "GET", path: "/kv/items?limit=2", key: readKey, status: 200,
		data: map[string]any{"complete": false, "cursor": present}},
	{name: "list a prefix", method: "GET", path: "/kv/items?prefix=di&values=true", key: readKey, status: 200,
		data: map[string]any{"complete": true, "cursor": nil, "items": []any{map[string]any{"key": "dir/name", "value": "s", "version": present, "expiresAt": nil}}}},
	{name: "list with a bad limit", method: "GET", path: "/kv/items?limit=0", key: readKey, status: 400, code: "invalid_parameter"},
	{name: "idempotent write", method: "PUT", path: "/kv/items/i", key: writeKey, header: map[string]string{"Idempotency-Key": "op-1"},
		body: `{"value":1}`, status: 201, data: map[string]any{"key": "i"}},
	{name: "idempotent retry", method: "PUT", path: "/kv/items/i", key: writeKey, header: map[string]string{"Idempotency-Key": "op-1"},
		body: `{"value":1}`, status: 201, data: map[string]any{"key": "i"}},
	{name: "idempotency key reused", method: "PUT", path: "/kv/items/i", key: writeKey, header: map[string]string{"Idempotency-Key": "op-1"},
		body: `{"value":2}`, status: 422, code: "idempotency_key_reused"},
	{name: "delete", method: "DELETE", path: "/kv/items/a", key: writeKey, status: 200, data: map[string]any{"key": "a", "deleted": true},
		headers: []string{"X-KV-Index"}},
	{name: "delete again", method: "DELETE", path: "/kv/items/a", key: writeKey, status: 200, data: map[string]any{"key": "a", "deleted": false}},
	{name: "bulk delete needs a prefix", method: "DELETE", path: "/kv/items", key: writeKey, status: 400, code: "invalid_parameter"},
	{name: "bulk delete", method: "DELETE", path: "/kv/items?prefix=c", key: writeKey, status: 200, data: map[string]any{"deleted": 1}},
	{name: "key too long", method: "PUT", path: "/kv/items/" + strings.Repeat("k", 1025), key: writeKey, body: `{"value":1}`, status: 400, code: "invalid_key"},
	{name: "ttl with keepTtl", method: "PUT", path: "/kv/items/b", key: writeKey, body: `{"value":1,"ttlSeconds":5,"keepTtl":true}`, status: 400, code: "invalid_ttl"},
	{name: "if-match on a missing key", method: "PUT", path: "/kv/items/missing", key: writeKey, header: map[string]string{"If-Match": `"3"`},
		body: `{"value":1}`, status: 412, code: "version_mismatch"},
	{name: "delete if-match fails", method: "DELETE", path: "/kv/items/dir%2Fname", key: writeKey, header: map[string]string{"If-Match": `"999999"`},
		status: 412, code: "version_mismatch"},
	{name: "incr overflows", method: "POST", path: "/kv/items/big/incr", key: writeKey, body: `{"by":9223372036854775807}`, status: 200,
		data: map[string]any{"value": int64(9223372036854775807)}},
	{name: "incr past the range", method: "POST", path: "/kv/items/big/incr", key: writeKey, body: `{"by":1}`, status: 409, code: "overflow"},
	{name: "patch without ttl", method: "PATCH", path: "/kv/items/dir%2Fname", key: writeKey, body: `{}`, status: 400, code: "invalid_ttl"},
	{name: "bad idempotency key", method: "PUT", path: "/kv/items/b", key: writeKey, header: map[string]string{"Idempotency-Key": "has space"},
		body: `{"value":1}`, status: 400, code: "invalid_idempotency_key"},
	{name: "bad cursor", method: "GET", path: "/kv/items?cursor=%21%21", key: readKey, status: 400, code: "invalid_parameter"},
	{name: "write key cannot transfer leadership", method: "POST", path: "/cluster/leader/transfer", key: writeKey, status: 403, code: "forbidden"},
	{name: "status", method: "GET", path: "/cluster/status", key: readKey, status: 200,
		data: map[string]any{"nodeId": present, "state": "Leader", "leaderId": present}},
	{name: "unknown route", method: "GET", path: "/nope", key: readKey, status: 404, code: "not_found"},
}

func TestConformanceRealServer(t *testing.T) {
	runConformance(t, realServer(t))
}

func TestConformanceFake(t *testing.T) {
	fake := kvfake.New()
	fake.AddAPIKey(readKey, "read")
	fake.AddAPIKey(writeKey, "write")
	fake.AddAPIKey(adminKey, "admin")
	srv := httptest.NewServer(fake.Handler(nil))
	t.Cleanup(srv.Close)
	runConformance(t, srv.URL)
}

func runConformance(t *testing.T, base string) {
	cl := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(cl.CloseIdleConnections)
	for _, st := range conformance {
		req, err := http.NewRequest(st.method, base+st.path, strings.NewReader(st.body))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.key != "" {
			req.Header.Set("Authorization", "Bearer "+st.key)
		}
		if st.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range st.header {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: read body: %v", st.name, err)
		}
		checkStep(t, st, resp, body)
	}
}

func checkStep(t *testing.T, st step, resp *http.Response, body []byte) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s (%s %s): %s\nanswer %d %s", st.name, st.method, st.path, sprintf(format, args...), resp.StatusCode, bytes.TrimSpace(body))
	}
	if resp.StatusCode != st.status {
		fail("status %d, want %d", resp.StatusCode, st.status)
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		fail("Cache-Control %q, want no-store", cc)
	}
	if id, sent := resp.Header.Get("X-Request-Id"), st.header["X-Request-Id"]; id == "" || (sent != "" && id != sent) {
		fail("X-Request-Id %q (sent %q)", id, sent)
	}
	for _, h := range st.headers {
		if resp.Header.Get(h) == "" {
			fail("no %s header", h)
		}
	}
	var doc struct {
		Data  map[string]json.RawMessage `json:"data"`
		Error *struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Retryable *bool  `json:"retryable"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		fail("body is not the API's JSON: %v", err)
		return
	}
	if st.code != "" {
		if doc.Error == nil || doc.Error.Code != st.code || doc.Error.Message == "" || doc.Error.Retryable == nil {
			fail("want error %q with a message and retryable", st.code)
		}
		return
	}
	if doc.Error != nil || doc.Data == nil {
		fail("want a data answer")
		return
	}
	for field, want := range st.data {
		raw, ok := doc.Data[field]
		var got any
		_ = json.Unmarshal(raw, &got)
		if !ok || !matches(got, want) {
			fail("data.%s = %s, want %v", field, raw, want)
		}
	}
	if et, v := resp.Header.Get("ETag"), doc.Data["version"]; et != "" && v != nil && et != `"`+string(v)+`"` {
		fail("ETag %s does not name version %s", et, v)
	}
}

// matches reports whether got (decoded JSON) is want: present matches any
// non-null value, a map matches a map holding at least its fields, a list a
// list of as many matching elements, anything else the same JSON.
func matches(got, want any) bool {
	switch w := want.(type) {
	case string:
		if w == present {
			return got != nil
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !matches(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !matches(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	var norm any
	_ = json.Unmarshal(b, &norm)
	b, _ = json.Marshal(norm)
	return bytes.Equal(a, b)
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(fmt.Sprintf(format, args...))
}

// realServer starts the real HTTP API over a real single-node store (no
// peers: it elects itself) and returns its URL.
func realServer(t *testing.T) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	st, err := store.Open(store.Config{
		NodeID: "n1", DataDir: t.TempDir(), Logger: logger,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, InsecurePeer: true, AllowUnauthenticatedPeers: true,
	}, mux)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := httpapi.NewKeyring([]httpapi.APIKey{
		httpapi.NewAPIKey("reader", httpapi.ScopeRead, readKey),
		httpapi.NewAPIKey("writer", httpapi.ScopeWrite, writeKey),
		httpapi.NewAPIKey("admin", httpapi.ScopeAdmin, adminKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Keys: keys, Logger: logger}, st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	deadline := time.Now().Add(10 * time.Second)
	for !st.IsLeader() || st.Ready(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the single-node store did not become a ready leader in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv.URL
}
