package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

type h = map[string]string

// TestSemanticsStatuses walks every new status and code through HTTP, in
// order, against one fake store.
func TestSemanticsStatuses(t *testing.T) {
	e := newTestEnv(t, nil)
	steps := []struct {
		name       string
		method     string
		path, body string
		hdr        h
		status     int
		code       string // error code, or "" for success
		current    string // currentVersion JSON for 412s
		etag       string // expected ETag, if any
		bodySubstr string
	}{
		{"create only", "PUT", "/kv/items/s", `{"value": 1, "ttlSeconds": 60}`, h{"If-None-Match": "*"}, 201, "", "", `"1"`, `"version":1`},
		{"create only again", "PUT", "/kv/items/s", `{"value": 2}`, h{"If-None-Match": "*"}, 412, "already_exists", "1", "", ""},
		{"if-match ok", "PUT", "/kv/items/s", `{"value": 3}`, h{"If-Match": `"1"`}, 200, "", "", `"2"`, `"version":2`},
		{"if-match stale", "PUT", "/kv/items/s", `{"value": 4}`, h{"If-Match": `"1"`}, 412, "version_mismatch", "2", "", ""},
		{"if-match weak and bare", "PUT", "/kv/items/s", `{"value": 5, "keepTtl": true}`, h{"If-Match": `W/"2"`}, 200, "", "", `"3"`, ""},
		{"if-match bare", "PUT", "/kv/items/s", `{"value": "five"}`, h{"If-Match": `3`}, 200, "", "", `"4"`, ""},
		{"if-match missing key", "PUT", "/kv/items/nope", `{"value": 1}`, h{"If-Match": `"4"`}, 412, "version_mismatch", "null", "", ""},
		{"if-match list", "PUT", "/kv/items/s", `{"value": 1}`, h{"If-Match": `"1", "2"`}, 400, "invalid_precondition", "", "", ""},
		{"if-match star", "PUT", "/kv/items/s", `{"value": 1}`, h{"If-Match": `*`}, 400, "invalid_precondition", "", "", ""},
		{"if-none-match etag", "PUT", "/kv/items/s", `{"value": 1}`, h{"If-None-Match": `"1"`}, 400, "invalid_precondition", "", "", ""},
		{"both preconditions", "PUT", "/kv/items/s", `{"value": 1}`, h{"If-None-Match": `*`, "If-Match": `"4"`}, 400, "invalid_precondition", "", "", ""},
		{"keepTtl with ttl", "PUT", "/kv/items/s", `{"value": 1, "keepTtl": true, "ttlSeconds": 5}`, nil, 400, "invalid_ttl", "", "", ""},
		{"keepTtl not bool", "PUT", "/kv/items/s", `{"value": 1, "keepTtl": 1}`, nil, 400, "invalid_json", "", "", ""},
		{"get etag", "GET", "/kv/items/s", "", nil, 200, "", "", `"4"`, `"ttlRemainingMs":null`},

		{"patch ttl", "PATCH", "/kv/items/s", `{"ttlSeconds": 30}`, nil, 200, "", "", `"5"`, `"expiresAt":"2026-11-26T06:30:29.623Z"`},
		{"patch if-match stale", "PATCH", "/kv/items/s", `{"ttlSeconds": 30}`, h{"If-Match": `"4"`}, 412, "version_mismatch", "5", "", ""},
		{"patch remove ttl", "PATCH", "/kv/items/s", `{"ttlSeconds": null}`, h{"If-Match": `"5"`}, 200, "", "", `"6"`, `"expiresAt":null`},
		{"patch missing key", "PATCH", "/kv/items/nope", `{"ttlSeconds": 30}`, nil, 404, "not_found", "", "", ""},
		{"patch no field", "PATCH", "/kv/items/s", `{}`, nil, 400, "invalid_ttl", "", "", ""},
		{"patch value field", "PATCH", "/kv/items/s", `{"value": 1}`, nil, 400, "invalid_json", "", "", ""},
		{"patch bad ttl", "PATCH", "/kv/items/s", `{"ttlSeconds": -1}`, nil, 400, "invalid_ttl", "", "", ""},
		{"patch if-none-match", "PATCH", "/kv/items/s", `{"ttlSeconds": 1}`, h{"If-None-Match": "*"}, 400, "invalid_precondition", "", "", ""},

		{"incr creates", "POST", "/kv/items/c/incr", "", nil, 200, "", "", `"7"`, `{"data":{"key":"c","value":1,"version":7,"expiresAt":null}}`},
		{"incr by", "POST", "/kv/items/c/incr", `{"by": -11, "ttlSeconds": 10}`, nil, 200, "", "", `"8"`, `"value":-10`},
		{"incr by fraction", "POST", "/kv/items/c/incr", `{"by": 1.5}`, nil, 400, "invalid_json", "", "", ""},
		{"incr by exponent", "POST", "/kv/items/c/incr", `{"by": 1e3}`, nil, 400, "invalid_json", "", "", ""},
		{"incr by string", "POST", "/kv/items/c/incr", `{"by": "1"}`, nil, 400, "invalid_json", "", "", ""},
		{"incr by too big", "POST", "/kv/items/c/incr", `{"by": 9223372036854775808}`, nil, 400, "invalid_json", "", "", ""},
		{"incr non-integer", "POST", "/kv/items/s/incr", `{"by": 1}`, nil, 409, "not_an_integer", "", "", ""},
		{"incr overflow", "POST", "/kv/items/c/incr", `{"by": -9223372036854775807}`, nil, 409, "overflow", "", "", ""},
		{"incr unknown field", "POST", "/kv/items/c/incr", `{"step": 1}`, nil, 400, "invalid_json", "", "", ""},

		{"delete if-match stale", "DELETE", "/kv/items/s", "", h{"If-Match": `"1"`}, 412, "version_mismatch", "6", "", ""},
		{"delete if-match", "DELETE", "/kv/items/s", "", h{"If-Match": `"6"`}, 200, "", "", "", `"deleted":true`},
		{"delete if-match missing", "DELETE", "/kv/items/s", "", h{"If-Match": `"6"`}, 412, "version_mismatch", "null", "", ""},
		{"delete if-none-match", "DELETE", "/kv/items/s", "", h{"If-None-Match": `*`}, 400, "invalid_precondition", "", "", ""},
	}
	for _, s := range steps {
		res := e.doH(s.method, s.path, s.body, bearer, s.hdr)
		if s.code != "" {
			eb := wantError(t, res, s.status, s.code)
			if s.status == 412 && string(eb.CurrentVersion) != s.current {
				t.Errorf("%s: currentVersion = %s, want %s", s.name, eb.CurrentVersion, s.current)
			}
			if s.status != 412 && eb.CurrentVersion != nil {
				t.Errorf("%s: currentVersion on a %d", s.name, s.status)
			}
			continue
		}
		wantData(t, res, s.status, nil)
		if got := res.header.Get("ETag"); got != s.etag {
			t.Errorf("%s: ETag = %q, want %q", s.name, got, s.etag)
		}
		if s.method != "GET" && res.header.Get("X-KV-Index") == "" {
			t.Errorf("%s: write without X-KV-Index", s.name)
		}
		if !strings.Contains(string(res.body), s.bodySubstr) {
			t.Errorf("%s: body %s lacks %s", s.name, res.body, s.bodySubstr)
		}
	}
}

func TestKeepTTLReachesStore(t *testing.T) {
	e := newTestEnv(t, nil)
	wantData(t, e.do("PUT", "/kv/items/k", `{"value": 1, "keepTtl": true}`, bearer), 201, nil)
	if !e.st.lastKeepTTL || e.st.lastTTL != 0 {
		t.Fatalf("keepTTL=%v ttl=%v", e.st.lastKeepTTL, e.st.lastTTL)
	}
	wantData(t, e.do("PUT", "/kv/items/k", `{"value": 1, "keepTtl": false, "ttlSeconds": 2}`, bearer), 200, nil)
	if e.st.lastKeepTTL || e.st.lastTTL != 2*time.Second {
		t.Fatalf("keepTTL=%v ttl=%v", e.st.lastKeepTTL, e.st.lastTTL)
	}
}

func TestTTLRemaining(t *testing.T) {
	e := newTestEnv(t, nil)
	wantData(t, e.do("PUT", "/kv/items/k", `{"value": 1, "ttlSeconds": 90.5}`, bearer), 201, nil)
	res := e.do("GET", "/kv/items/k", "", bearer)
	if !strings.Contains(string(res.body), `"ttlRemainingMs":90500}`) {
		t.Fatalf("GET = %s", res.body)
	}
	e.st.mu.Lock()
	e.st.now = e.st.now.Add(time.Hour) // the node's clock is past the expiry
	e.st.mu.Unlock()
	if res := e.do("GET", "/kv/items/k", "", bearer); !strings.Contains(string(res.body), `"ttlRemainingMs":0}`) {
		t.Fatalf("GET after expiry on this clock = %s", res.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newTestEnv(t, nil)
	k := h{"Idempotency-Key": "9f1c-charge-42"}
	first := e.doH("POST", "/kv/items/n/incr", `{"by": 5}`, bearer, k)
	wantData(t, first, 200, nil)
	again := e.doH("POST", "/kv/items/n/incr", `{"by": 5}`, bearer, k)
	if again.status != 200 || string(again.body) != string(first.body) {
		t.Fatalf("retry = %d %s, want the original %s", again.status, again.body, first.body)
	}
	if it := e.st.items["n"]; string(it.Value) != "5" {
		t.Fatalf("counter = %s, want 5 (applied once)", it.Value)
	}
	opts := e.st.lastOpts
	if opts.IdempotencyKey != "9f1c-charge-42" || opts.Fingerprint == ([32]byte{}) {
		t.Fatalf("store got %+v", opts)
	}
	// Any difference in the request changes the fingerprint: 422.
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/kv/items/n/incr", `{"by": 6}`},
		{"POST", "/kv/items/n/incr", `{"by":5}`}, // exact bytes count
		{"POST", "/kv/items/m/incr", `{"by": 5}`},
		{"PUT", "/kv/items/n", `{"value": 5}`},
		{"DELETE", "/kv/items/n", ``},
		{"DELETE", "/kv/items?prefix=n", ``},
	} {
		wantError(t, e.doH(tc.method, tc.path, tc.body, bearer, k), 422, "idempotency_key_reused")
	}
	withIfMatch := h{"Idempotency-Key": "9f1c-charge-42", "If-Match": `"1"`}
	wantError(t, e.doH("POST", "/kv/items/n/incr", `{"by": 5}`, bearer, withIfMatch), 422, "idempotency_key_reused")

	for _, bad := range []string{strings.Repeat("x", 129), "has space", "tab\tkey", "é"} {
		res := e.doH("PUT", "/kv/items/x", `{"value": 1}`, bearer, h{"Idempotency-Key": bad})
		wantError(t, res, 400, "invalid_idempotency_key")
	}
	wantData(t, e.doH("PUT", "/kv/items/x", `{"value": 1}`, bearer, h{"Idempotency-Key": strings.Repeat("x", 128)}), 201, nil)
	// An empty header value is not a key.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/kv/items/x", strings.NewReader(`{"value": 1}`))
	req.Header.Set("Authorization", bearer)
	req.Header["Idempotency-Key"] = []string{""}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("empty Idempotency-Key: %d", resp.StatusCode)
	}
}

func TestReadLevels(t *testing.T) {
	e := newTestEnv(t, nil)
	wantData(t, e.do("PUT", "/kv/items/k", `{"value": 1}`, bearer), 201, nil)
	e.st.info = store.ReadInfo{AppliedIndex: 77, Follower: true, LastContact: 1234 * time.Millisecond}
	tests := []struct {
		path  string
		hdr   h
		level store.ReadLevel
		min   uint64
	}{
		{"/kv/items/k", nil, store.Linearizable, 0},
		{"/kv/items/k?consistency=linearizable", nil, store.Linearizable, 0},
		{"/kv/items/k?consistency=stale", nil, store.Stale, 0},
		{"/kv/items/k", h{"X-KV-Consistency": "stale"}, store.Stale, 0},
		{"/kv/items/k?consistency=stale&minIndex=1", nil, store.Stale, 1},
	}
	for _, tt := range tests {
		res := e.doH("GET", tt.path, "", bearer, tt.hdr)
		wantData(t, res, 200, nil)
		if e.st.lastRead.Level != tt.level || e.st.lastRead.MinIndex != tt.min {
			t.Errorf("%s: store got %+v", tt.path, e.st.lastRead)
		}
		if res.header.Get("X-KV-Index") != "77" || res.header.Get("X-KV-Last-Contact-Ms") != "1234" {
			t.Errorf("%s: headers %v", tt.path, res.header)
		}
	}
	e.st.info = store.ReadInfo{AppliedIndex: 5}
	if res := e.do("GET", "/kv/items/k?consistency=stale", "", bearer); res.header.Get("X-KV-Last-Contact-Ms") != "" {
		t.Errorf("leader sent X-KV-Last-Contact-Ms")
	}
	eb := wantError(t, e.do("GET", "/kv/items/k?consistency=stale&minIndex=99", "", bearer), 503, "index_not_reached")
	if !eb.Retryable {
		t.Error("index_not_reached not retryable")
	}
	for _, bad := range []string{"?consistency=eventual", "?minIndex=0", "?minIndex=-1", "?minIndex=x", "?minIndex=1&minIndex=2"} {
		wantError(t, e.do("GET", "/kv/items/k"+bad, "", bearer), 400, "invalid_parameter")
	}
}

type listPage struct {
	Items []struct {
		Key       string          `json:"key"`
		Value     json.RawMessage `json:"value"`
		Version   uint64          `json:"version"`
		ExpiresAt *string         `json:"expiresAt"`
	} `json:"items"`
	Cursor   *string `json:"cursor"`
	Complete bool    `json:"complete"`
}

func TestListAndBulkDelete(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, k := range []string{"u%2F1%2Fa", "u%2F1%2Fb", "u%2F1%2Fc", "u%2F2%2Fa", "v"} {
		wantData(t, e.do("PUT", "/kv/items/"+k, `{"value": {"k": [1, 2.50]}}`, bearer), 201, nil)
	}
	var keys []string
	cursor := ""
	for pages := 0; ; pages++ {
		path := "/kv/items?prefix=u%2F&limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var p listPage
		wantData(t, e.do("GET", path, "", bearer), 200, &p)
		for _, it := range p.Items {
			keys = append(keys, it.Key)
			if it.Value != nil || it.Version == 0 {
				t.Fatalf("item %+v", it)
			}
		}
		if p.Complete != (p.Cursor == nil) {
			t.Fatalf("complete=%v cursor=%v", p.Complete, p.Cursor)
		}
		if p.Complete {
			break
		}
		cursor = *p.Cursor
	}
	if got := strings.Join(keys, ","); got != "u/1/a,u/1/b,u/1/c,u/2/a" {
		t.Fatalf("listed %s", got)
	}
	if e.st.lastList.Limit != 2 || e.st.lastList.After != "u/1/b" || e.st.lastLevel != store.Linearizable {
		t.Fatalf("store got %+v", e.st.lastList)
	}
	res := e.do("GET", "/kv/items?prefix=v&values=true&consistency=stale", "", bearer)
	if want := `{"data":{"items":[{"key":"v","value":{"k":[1,2.50]},"version":5,"expiresAt":null}],"cursor":null,"complete":true}}` + "\n"; string(res.body) != want {
		t.Fatalf("values=true page = %s, want %s", res.body, want)
	}
	if e.st.lastLevel != store.Stale || res.header.Get("X-KV-Index") == "" {
		t.Fatalf("level %v headers %v", e.st.lastLevel, res.header)
	}
	var p listPage
	wantData(t, e.do("GET", "/kv/items", "", bearer), 200, &p)
	if len(p.Items) != 5 || e.st.lastList.Limit != 100 {
		t.Fatalf("default list: %d items, limit %d", len(p.Items), e.st.lastList.Limit)
	}
	for _, bad := range []string{"?limit=0", "?limit=1001", "?limit=x", "?cursor=%21%21", "?cursor=eA", "?values=yes", "?prefix=%01", "?consistency=x", "?prefix=a&prefix=b"} {
		wantError(t, e.do("GET", "/kv/items"+bad, "", bearer), 400, "invalid_parameter")
	}
	wantData(t, e.do("GET", "/kv/items?limit=1000", "", bearer), 200, nil)

	var d struct {
		Deleted int `json:"deleted"`
	}
	res = e.do("DELETE", "/kv/items?prefix=u%2F1%2F", "", bearer)
	wantData(t, res, 200, &d)
	if d.Deleted != 3 || res.header.Get("X-KV-Index") == "" {
		t.Fatalf("deleted %d, headers %v", d.Deleted, res.header)
	}
	for _, bad := range []string{"", "?prefix=", "?other=1"} {
		wantError(t, e.do("DELETE", "/kv/items"+bad, "", bearer), 400, "invalid_parameter")
	}
	wantError(t, e.doH("DELETE", "/kv/items?prefix=u", "", bearer, h{"If-Match": `"1"`}), 400, "invalid_precondition")
}

// The same Idempotency-Key sent with two API keys names two requests: the
// scope the store receives is the key's name, so neither caller replays,
// blocks or reads the other's result.
func TestIdempotencyKeyScopedPerAPIKeyName(t *testing.T) {
	ring, err := NewKeyring([]APIKey{writeKey, NewAPIKey("billing", ScopeWrite, "billing-secret-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.Keys = ring })
	k := h{"Idempotency-Key": "X1"}
	web := "Bearer writer-secret-0123456789"
	billing := "Bearer billing-secret-0123456789"
	first := e.doH("POST", "/kv/items/ctr/incr", `{"by": 1}`, web, k)
	wantData(t, first, 200, nil)
	if got := e.st.lastOpts.IdempotencyScope; got != "writer" {
		t.Fatalf("scope passed to the store = %q, want the key's name", got)
	}
	// Another caller, the same key, another body: applied, not 422.
	other := e.doH("POST", "/kv/items/ctr/incr", `{"by": 10}`, billing, k)
	wantData(t, other, 200, nil)
	if got := e.st.lastOpts.IdempotencyScope; got != "billing" {
		t.Fatalf("scope passed to the store = %q, want billing", got)
	}
	if it := e.st.items["ctr"]; string(it.Value) != "11" {
		t.Fatalf("counter = %s, want 11 (both applied)", it.Value)
	}
	// Each retry gets its own caller's original answer.
	if again := e.doH("POST", "/kv/items/ctr/incr", `{"by": 1}`, web, k); string(again.body) != string(first.body) {
		t.Fatalf("writer's retry = %s, want %s", again.body, first.body)
	}
	if again := e.doH("POST", "/kv/items/ctr/incr", `{"by": 10}`, billing, k); string(again.body) != string(other.body) {
		t.Fatalf("billing's retry = %s, want %s", again.body, other.body)
	}
	// The --api-key shortcut has a name of its own.
	wantData(t, e.doH("POST", "/kv/items/ctr/incr", `{"by": 100}`, bearer, k), 200, nil)
	if got := e.st.lastOpts.IdempotencyScope; got != "default" {
		t.Fatalf("scope of the --api-key key = %q, want default", got)
	}
	// A full dedup table is a retryable 503.
	e.st.setErr(fmt.Errorf("leader n2: %w", store.ErrIdempotencyTableFull))
	res := e.doH("POST", "/kv/items/ctr/incr", `{"by": 1}`, web, h{"Idempotency-Key": "X2"})
	if eb := wantError(t, res, 503, "idempotency_table_full"); !eb.Retryable || res.header.Get("Retry-After") != "1" {
		t.Fatalf("table full: retryable %v, Retry-After %q", eb.Retryable, res.header.Get("Retry-After"))
	}
}
