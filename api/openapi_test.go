package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/api"
	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
)

const (
	readSecret  = "reader-secret-0123456789"
	writeSecret = "writer-secret-0123456789"
	adminSecret = "admin-secret-0123456789"
)

// loadDoc parses and validates api/openapi.yaml as OpenAPI 3.1.
func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("api/openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestDocumentMatchesTheRouteTable fails when a route exists in the router
// but not in the document, or the other way round, naming the operation.
func TestDocumentMatchesTheRouteTable(t *testing.T) {
	doc := loadDoc(t)
	served := map[string]httpapi.Route{}
	for _, rt := range httpapi.Routes() {
		served[rt.Method+" "+rt.Template] = rt
	}
	described := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			described[method+" "+path] = op
		}
	}
	for name, rt := range served {
		op, ok := described[name]
		if !ok {
			t.Errorf("route %s is served by the router (httpapi's route table) but api/openapi.yaml has no operation for it: add paths[%q].%s with its parameters, bodies and responses",
				name, rt.Template, strings.ToLower(rt.Method))
			continue
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != rt.Public {
			t.Errorf("%s: the router serves it public=%v but api/openapi.yaml says public=%v (security: [] marks a public operation)", name, rt.Public, public)
		}
	}
	for name := range described {
		if _, ok := served[name]; !ok {
			t.Errorf("api/openapi.yaml describes %s, which the router does not serve: remove the operation, or add the route to httpapi's route table", name)
		}
	}
}

// node is a real single-node store behind the real HTTP handler.
type node struct {
	url  string
	peer string
}

func startNode(t *testing.T) node {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st, err := store.Open(store.Config{
		NodeID: "n1", DataDir: t.TempDir(), Bootstrap: []store.Peer{{ID: "n1", Addr: mux.Addr()}},
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond,
		InsecurePeer: true, AllowUnauthenticatedPeers: true, Logger: quiet, Metrics: reg,
		MaxValueBytes: 1024, // as kvnode does, the store gets the handler's value limit
	}, mux)
	if err != nil {
		mux.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); mux.Close() })
	ring, err := httpapi.NewKeyring([]httpapi.APIKey{
		httpapi.NewAPIKey("reader", httpapi.ScopeRead, readSecret),
		httpapi.NewAPIKey("writer", httpapi.ScopeWrite, writeSecret),
		httpapi.NewAPIKey("ops", httpapi.ScopeAdmin, adminSecret),
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Keys: ring, Logger: quiet, Metrics: reg, MaxValueBytes: 1024,
		Watch: httpapi.WatchConfig{MaxDuration: 200 * time.Millisecond}}, st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	deadline := time.Now().Add(20 * time.Second)
	for !st.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the single node did not become leader within 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return node{url: srv.URL, peer: mux.Addr()}
}

// call is one request of the conformance run. Header values and the body
// may name values saved by earlier calls as {name}.
type call struct {
	method, path string
	auth         string // secret, "" for none
	header       map[string]string
	body         string
	bodyFrom     string // send the body saved under this name instead
	want         int
	wantCode     string // the error code, for errors
	// offContract: the request itself breaks the document (a bad header or
	// parameter the server must refuse); request validation must fail.
	offContract bool
	saveETag    string // save the response's ETag under this name
	saveBody    string // save the response body under this name
}

func (c call) String() string { return c.method + " " + c.path }

// TestServerConformsToTheDocument drives every route of the real router
// over a real store, with success and error cases, and validates each
// request and response against api/openapi.yaml with kin-openapi's
// openapi3filter. It fails when a route in the route table is not exercised.
func TestServerConformsToTheDocument(t *testing.T) {
	// A watch stream is text: its events are checked in httpapi's tests.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.FileBodyDecoder)
	doc := loadDoc(t)
	n := startNode(t)
	doc.Servers = openapi3.Servers{{URL: n.url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	A, W, R := adminSecret, writeSecret, readSecret
	big := `{"value":"` + strings.Repeat("x", 2000) + `"}`
	// 65 operations: one over the default --max-txn-ops, within the document's hard cap.
	tooManyOps := make([]string, 65)
	for i := range tooManyOps {
		tooManyOps[i] = `{"op":"get","key":"t/` + strconv.Itoa(i) + `"}`
	}
	half := `"` + strings.Repeat("y", 600) + `"`
	calls := []call{
		// Items.
		{method: "PUT", path: "/kv/items/a", auth: W, body: `{"value":{"n":1},"ttlSeconds":60}`, want: 201, saveETag: "a"},
		{method: "PUT", path: "/kv/items/a", auth: W, body: `{"value":{"n":2},"keepTtl":true}`, want: 200, saveETag: "a"},
		{method: "GET", path: "/kv/items/a", auth: R, want: 200},
		{method: "GET", path: "/kv/items/a?consistency=stale&minIndex=1", auth: R, want: 200},
		{method: "GET", path: "/kv/items/a", auth: R, header: map[string]string{"X-KV-Consistency": "stale"}, want: 200},
		{method: "GET", path: "/kv/items/missing", auth: R, want: 404, wantCode: "not_found"},
		{method: "GET", path: "/kv/items/a?waitIndex=1&wait=100ms", auth: R, want: 200},
		{method: "GET", path: "/kv/items/a?waitIndex=x", auth: R, want: 400, wantCode: "invalid_parameter", offContract: true},
		{method: "GET", path: "/kv/watch?prefix=a&fromIndex=1", auth: R, want: 200},
		{method: "GET", path: "/kv/watch", auth: R, header: map[string]string{"Last-Event-ID": "2"}, want: 200},
		{method: "GET", path: "/kv/watch?fromIndex=x", auth: R, want: 400, wantCode: "invalid_parameter", offContract: true},
		{method: "GET", path: "/kv/watch", want: 401, wantCode: "unauthorized"},
		{method: "GET", path: "/kv/items/a?consistency=sometimes", auth: R, want: 400, wantCode: "invalid_parameter", offContract: true},
		{method: "GET", path: "/kv/items/a", want: 401, wantCode: "unauthorized"},
		{method: "PUT", path: "/kv/items/a", auth: R, body: `{"value":1}`, want: 403, wantCode: "forbidden"},
		{method: "PUT", path: "/kv/items/a", auth: W, header: map[string]string{"If-Match": `"1"`}, body: `{"value":3}`, want: 412, wantCode: "version_mismatch"},
		{method: "PUT", path: "/kv/items/a", auth: W, header: map[string]string{"If-Match": "{a}"}, body: `{"value":3}`, want: 200, saveETag: "a"},
		{method: "PUT", path: "/kv/items/a", auth: W, header: map[string]string{"If-None-Match": "*"}, body: `{"value":4}`, want: 412, wantCode: "already_exists"},
		{method: "PUT", path: "/kv/items/lock", auth: W, header: map[string]string{"If-None-Match": "*"}, body: `{"value":"w1","ttlSeconds":30}`, want: 201},
		{method: "PUT", path: "/kv/items/a", auth: W, header: map[string]string{"If-None-Match": `"7"`}, body: `{"value":4}`, want: 400, wantCode: "invalid_precondition", offContract: true},
		{method: "PUT", path: "/kv/items/a", auth: W, body: `{"ttlSeconds":5}`, want: 400, wantCode: "missing_value", offContract: true},
		{method: "PUT", path: "/kv/items/a", auth: W, body: `{"value":1,"ttlSeconds":-1}`, want: 400, wantCode: "invalid_ttl", offContract: true},
		{method: "PUT", path: "/kv/items/a", auth: W, body: `{"value":`, want: 400, wantCode: "invalid_json", offContract: true},
		{method: "PUT", path: "/kv/items/a", auth: W, body: big, want: 413, wantCode: "too_large"},
		{method: "PUT", path: "/kv/items/" + strings.Repeat("k", 513), auth: W, body: `{"value":1}`, want: 400, wantCode: "invalid_key"},
		{method: "PUT", path: "/kv/items/idem", auth: W, header: map[string]string{"Idempotency-Key": "op-1"}, body: `{"value":1}`, want: 201},
		{method: "PUT", path: "/kv/items/idem", auth: W, header: map[string]string{"Idempotency-Key": "op-1"}, body: `{"value":1}`, want: 201},
		{method: "PUT", path: "/kv/items/idem", auth: W, header: map[string]string{"Idempotency-Key": "op-1"}, body: `{"value":2}`, want: 422, wantCode: "idempotency_key_reused"},
		{method: "PUT", path: "/kv/items/idem", auth: W, header: map[string]string{"Idempotency-Key": "has space"}, body: `{"value":2}`, want: 400, wantCode: "invalid_idempotency_key", offContract: true},
		{method: "PATCH", path: "/kv/items/a", auth: W, body: `{"ttlSeconds":120}`, want: 200},
		{method: "PATCH", path: "/kv/items/a", auth: W, body: `{"ttlSeconds":null}`, want: 200},
		{method: "PATCH", path: "/kv/items/missing", auth: W, body: `{"ttlSeconds":5}`, want: 404, wantCode: "not_found"},
		{method: "PATCH", path: "/kv/items/a", auth: W, body: `{}`, want: 400, wantCode: "invalid_ttl", offContract: true},
		{method: "POST", path: "/kv/items/ctr/incr", auth: W, want: 200},
		{method: "POST", path: "/kv/items/ctr/incr", auth: W, body: `{"by":-5,"ttlSeconds":60}`, want: 200},
		{method: "PUT", path: "/kv/items/text", auth: W, body: `{"value":"seven"}`, want: 201},
		{method: "POST", path: "/kv/items/text/incr", auth: W, body: `{"by":1}`, want: 409, wantCode: "not_an_integer"},
		{method: "PUT", path: "/kv/items/max", auth: W, body: `{"value":9223372036854775807}`, want: 201},
		{method: "POST", path: "/kv/items/max/incr", auth: W, want: 409, wantCode: "overflow"},
		{method: "DELETE", path: "/kv/items/lock", auth: W, header: map[string]string{"If-Match": `"1"`}, want: 412, wantCode: "version_mismatch"},
		{method: "DELETE", path: "/kv/items/lock", auth: W, want: 200},
		{method: "DELETE", path: "/kv/items/lock", auth: W, want: 200},
		{method: "GET", path: "/kv/items/", auth: R, want: 400, wantCode: "invalid_key"},
		{method: "PUT", path: "/kv/items/", auth: W, want: 400, wantCode: "invalid_key"},
		{method: "DELETE", path: "/kv/items/", auth: W, want: 400, wantCode: "invalid_key"},
		// Transactions.
		{method: "POST", path: "/kv/txn", auth: W, header: map[string]string{"Idempotency-Key": "txn-1"},
			body: `{"checks":[{"key":"t/session","exists":false},{"key":"t/user","version":0},{"key":"text","value":"seven"}],` +
				`"ops":[{"op":"put","key":"t/session","value":{"user":42},"ttlSeconds":60},{"op":"put","key":"t/user","value":"s1","keepTtl":true},` +
				`{"op":"incr","key":"t/logins","by":2,"ttlSeconds":60},{"op":"patch","key":"a","ttlSeconds":null},{"op":"delete","key":"t/none"}]}`, want: 200},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"get","key":"t/session"},{"op":"get","key":"t/none"}]}`, want: 200},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"checks":[{"key":"t/session","exists":false},{"key":"t/user","value":"s2"}],"ops":[{"op":"delete","key":"t/user"}]}`, want: 412, wantCode: "txn_check_failed"},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"put","key":"t/x","value":1},{"op":"incr","key":"text"}]}`, want: 409, wantCode: "txn_op_failed"},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"patch","key":"t/none","ttlSeconds":5}]}`, want: 409, wantCode: "txn_op_failed"},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[` + strings.Join(tooManyOps, ",") + `]}`, want: 400, wantCode: "invalid_parameter"},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"delete","key":"t/x"},{"op":"get","key":"t/x"}]}`, want: 400, wantCode: "invalid_parameter"},
		{method: "POST", path: "/kv/txn", auth: W, header: map[string]string{"Idempotency-Key": "txn-2"}, body: `{"ops":[{"op":"get","key":"t/x"}]}`, want: 400, wantCode: "invalid_parameter"},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[]}`, want: 400, wantCode: "invalid_json", offContract: true},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"checks":[{"key":"a","exists":true,"version":1}],"ops":[{"op":"get","key":"a"}]}`, want: 400, wantCode: "invalid_json", offContract: true},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"delete","key":"a","value":1}]}`, want: 400, wantCode: "invalid_json", offContract: true},
		{method: "POST", path: "/kv/txn", auth: W, body: `{"ops":[{"op":"put","key":"t/a","value":` + half + `},{"op":"put","key":"t/b","value":` + half + `}]}`, want: 413, wantCode: "too_large"},
		{method: "POST", path: "/kv/txn", auth: W, header: map[string]string{"Idempotency-Key": "txn-1"}, body: `{"ops":[{"op":"delete","key":"t/session"}]}`, want: 422, wantCode: "idempotency_key_reused"},
		{method: "POST", path: "/kv/txn", auth: R, body: `{"ops":[{"op":"get","key":"a"}]}`, want: 403, wantCode: "forbidden"},
		{method: "POST", path: "/kv/txn", body: `{"ops":[{"op":"get","key":"a"}]}`, want: 401, wantCode: "unauthorized"},
		// Lists and bulk delete.
		{method: "PUT", path: "/kv/items/s-1", auth: W, body: `{"value":1}`, want: 201},
		{method: "PUT", path: "/kv/items/s-2", auth: W, body: `{"value":2}`, want: 201},
		{method: "GET", path: "/kv/items?prefix=s-&limit=1", auth: R, want: 200},
		{method: "GET", path: "/kv/items?prefix=s-&values=true&consistency=stale", auth: R, want: 200},
		{method: "GET", path: "/kv/items?limit=0", auth: R, want: 400, wantCode: "invalid_parameter", offContract: true},
		{method: "GET", path: "/kv/items?cursor=not-a-cursor", auth: R, want: 400, wantCode: "invalid_parameter"},
		{method: "DELETE", path: "/kv/items?prefix=s-", auth: W, want: 200},
		{method: "DELETE", path: "/kv/items", auth: W, want: 400, wantCode: "invalid_parameter", offContract: true},
		// Health, status, metrics, this document.
		{method: "GET", path: "/healthz", want: 200},
		{method: "GET", path: "/readyz", want: 200},
		{method: "GET", path: "/readyz?verbose", want: 401, wantCode: "unauthorized"},
		{method: "GET", path: "/metrics", auth: R, want: 200},
		{method: "GET", path: "/metrics", want: 401, wantCode: "unauthorized"},
		{method: "GET", path: "/cluster/status", auth: R, want: 200},
		{method: "GET", path: "/openapi.yaml", want: 200},
		{method: "GET", path: "/debug/state", auth: A, want: 200},
		{method: "GET", path: "/cluster/overview", auth: R, want: 200},
		{method: "GET", path: "/cluster/overview", want: 401, wantCode: "unauthorized"},
		{method: "GET", path: "/auth/whoami", auth: W, want: 200},
		{method: "GET", path: "/ui", want: 308},
		{method: "GET", path: "/ui/", want: 200},
		{method: "GET", path: "/ui/app.css", want: 200},
		{method: "GET", path: "/ui/app.js", want: 200},
		{method: "GET", path: "/ui/favicon.svg", want: 200},
		{method: "GET", path: "/ui/nope.txt", want: 404, wantCode: "not_found"},
		{method: "GET", path: "/debug/state", auth: W, want: 403, wantCode: "forbidden"},
		// Membership.
		{method: "GET", path: "/cluster/nodes", auth: R, want: 200},
		{method: "POST", path: "/cluster/nodes", auth: A, body: `{"id":"n1","peerAddr":"` + n.peer + `"}`, want: 200},
		{method: "POST", path: "/cluster/nodes", auth: A, body: `{"peerAddr":"127.0.0.1:1"}`, want: 400, wantCode: "invalid_node", offContract: true},
		{method: "POST", path: "/cluster/nodes", auth: A, body: `{"id":"n9","peerAddr":"` + n.peer + `"}`, want: 409, wantCode: "node_conflict"},
		{method: "DELETE", path: "/cluster/nodes/n7", auth: A, want: 404, wantCode: "node_not_found"},
		{method: "DELETE", path: "/cluster/nodes/n1", auth: A, want: 409, wantCode: "last_voter"},
		{method: "POST", path: "/cluster/leader/transfer", auth: A, body: `{"id":"n7"}`, want: 404, wantCode: "node_not_found"},
		{method: "POST", path: "/cluster/leader/transfer", auth: A, body: `{"id":""}`, want: 400, wantCode: "invalid_json", offContract: true},
		// Backup and restore.
		{method: "GET", path: "/admin/snapshot", auth: A, want: 200, saveBody: "backup"},
		{method: "GET", path: "/admin/snapshot?minIndex=3", auth: A, want: 400, wantCode: "invalid_parameter"},
		{method: "POST", path: "/admin/restore", auth: A, header: map[string]string{"Content-Type": "application/octet-stream"}, bodyFrom: "backup", want: 200},
		{method: "POST", path: "/admin/restore", auth: A, header: map[string]string{"Content-Type": "application/octet-stream"}, body: "not a backup", want: 400, wantCode: "invalid_backup"},
		{method: "POST", path: "/admin/restore?force=maybe", auth: A, header: map[string]string{"Content-Type": "application/octet-stream"}, bodyFrom: "backup", want: 400, wantCode: "invalid_parameter", offContract: true},
	}

	// Redirects are answers to check, not to follow.
	httpc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	saved := map[string]string{}
	exercised := map[string]bool{}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	expand := func(s string) string {
		for k, v := range saved {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	for _, c := range calls {
		body := expand(c.body)
		if c.bodyFrom != "" {
			body = saved[c.bodyFrom]
		}
		newReq := func() *http.Request {
			req, err := http.NewRequest(c.method, n.url+c.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range c.header {
				req.Header.Set(k, expand(v))
			}
			if c.auth != "" {
				req.Header.Set("Authorization", "Bearer "+c.auth)
			}
			return req
		}

		req := newReq()
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: api/openapi.yaml has no operation for this request: %v", c, err)
			continue
		}
		exercised[req.Method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)
		switch {
		case reqErr != nil && !c.offContract:
			t.Errorf("%s: the request breaks api/openapi.yaml: %v", c, reqErr)
		case reqErr == nil && c.offContract:
			t.Errorf("%s: the server refuses this request (%d %s) but api/openapi.yaml allows it: constrain the parameter, header or body", c, c.want, c.wantCode)
		}

		resp, err := httpc.Do(newReq())
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d: %s", c, resp.StatusCode, c.want, got)
			continue
		}
		if c.wantCode != "" {
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			if json.Unmarshal(got, &e) != nil || e.Error.Code != c.wantCode {
				t.Errorf("%s: error body %s, want code %s", c, got, c.wantCode)
			}
		}
		if c.saveETag != "" {
			saved[c.saveETag] = resp.Header.Get("ETag")
		}
		if c.saveBody != "" {
			saved[c.saveBody] = string(got)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
		out.SetBodyBytes(got)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s: the %d response breaks api/openapi.yaml: %v\nbody: %.300s", c, resp.StatusCode, err, got)
		}
	}

	// Errors outside any operation: an unknown path and an unserved method
	// answer the document's Error schema (and Allow).
	for _, c := range []struct {
		method, path string
		want         int
		code         string
		routerErr    error
	}{
		{"GET", "/no/such/route", 404, "not_found", routers.ErrPathNotFound},
		{"POST", "/kv/items/a", 405, "method_not_allowed", routers.ErrMethodNotAllowed},
	} {
		req, _ := http.NewRequest(c.method, n.url+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+A)
		if _, _, err := router.FindRoute(req); !errors.Is(err, c.routerErr) {
			t.Errorf("%s %s: the document's router says %v, want %v", c.method, c.path, err, c.routerErr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v any
		if resp.StatusCode != c.want || json.Unmarshal(got, &v) != nil {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, got, c.want)
			continue
		}
		if err := doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil || !bytes.Contains(got, []byte(`"`+c.code+`"`)) {
			t.Errorf("%s %s: body %s does not match the Error schema with code %s: %v", c.method, c.path, got, c.code, err)
		}
		if c.want == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}

	var missing []string
	for _, rt := range httpapi.Routes() {
		if name := rt.Method + " " + rt.Template; !exercised[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("route %s is never exercised by TestServerConformsToTheDocument: add success and error calls for it to the calls list in api/openapi_test.go", name)
	}
}

// TestEveryErrorCodeIsDocumented reads every error code the HTTP layer can
// send (the code fields in httpapi's source) and checks the Error schema's
// enum lists exactly those.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	doc := loadDoc(t)
	documented := map[string]bool{}
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum {
		documented[v.(string)] = true
	}
	files, err := filepath.Glob("../httpapi/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("httpapi sources: %v", err)
	}
	codeField := regexp.MustCompile(`\bcode(?::\s*|\s*:?=\s*)"([a-z_]+)"`)
	sent := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range codeField.FindAllSubmatch(src, -1) {
			sent[string(m[1])] = true
		}
	}
	if len(sent) < 30 {
		t.Fatalf("found only %d error codes in httpapi's source: the pattern no longer matches how codes are written", len(sent))
	}
	for code := range sent {
		if !documented[code] {
			t.Errorf("httpapi sends error code %q, which the Error schema's code enum in api/openapi.yaml does not list", code)
		}
	}
	for code := range documented {
		if !sent[code] {
			t.Errorf("api/openapi.yaml lists error code %q, which httpapi never sends", code)
		}
	}
}
