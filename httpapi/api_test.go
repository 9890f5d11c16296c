package httpapi

import (
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/store"
)

// authenticatedRoutes is every method/path pair that must require the API key.
var authenticatedRoutes = []struct {
	method, path, body string
}{
	{"GET", "/cluster/status", ""},
	{"GET", "/kv/items/k", ""},
	{"PUT", "/kv/items/k", `{"value": 1}`},
	{"DELETE", "/kv/items/k", ""},
	{"GET", "/kv/items/", ""},
	{"PUT", "/kv/items/", `{"value": 1}`},
	{"DELETE", "/kv/items/", ""},
	{"POST", "/kv/items/k", `{"value": 1}`},
	{"POST", "/cluster/status", ""},
}

func TestAuthRequired(t *testing.T) {
	e := newTestEnv(t, nil)
	auths := []struct{ name, header string }{
		{"none", ""},
		{"wrong key", "Bearer not-the-key"},
		{"wrong key same length", "Bearer " + strings.Repeat("x", len(testAPIKey))},
		{"key prefix", "Bearer " + testAPIKey[:5]},
		{"key with suffix", bearer + "x"},
		{"empty bearer", "Bearer "},
		{"bare scheme", "Bearer"},
		{"basic", "Basic dXNlcjpzM2NyZXQtdGVzdC1rZXk="},
		{"no scheme", testAPIKey},
		{"token scheme", "Token " + testAPIKey},
	}
	for _, rt := range authenticatedRoutes {
		for _, a := range auths {
			t.Run(rt.method+" "+rt.path+"/"+a.name, func(t *testing.T) {
				res := e.do(rt.method, rt.path, rt.body, a.header)
				eb := wantError(t, res, http.StatusUnauthorized, "unauthorized")
				if eb.Retryable {
					t.Error("unauthorized is retryable")
				}
				if got := res.header.Get("WWW-Authenticate"); got != `Bearer realm="quorumkv"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			})
		}
	}
	if n := e.st.callCount(); n != 0 {
		t.Errorf("store called %d times by unauthenticated requests", n)
	}
}

func TestAuthAccepted(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, h := range []string{bearer, "bearer " + testAPIKey, "BEARER " + testAPIKey, "Bearer   " + testAPIKey} {
		wantData(t, e.do("GET", "/cluster/status", "", h), http.StatusOK, nil)
	}
}

func TestAuthMultipleHeaders(t *testing.T) {
	e := newTestEnv(t, nil)
	req, _ := http.NewRequest("GET", e.srv.URL+"/cluster/status", nil)
	req.Header.Add("Authorization", bearer)
	req.Header.Add("Authorization", "Bearer wrong")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, auth := range []string{"", "Bearer wrong", bearer} {
		res := e.do("GET", "/healthz", "", auth)
		if res.status != http.StatusOK || string(res.body) != `{"data":{"status":"ok"}}`+"\n" {
			t.Errorf("auth %q: %d %s", auth, res.status, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		method, path, auth, allow string
	}{
		{"POST", "/kv/items/k", bearer, "GET, PUT, PATCH, DELETE"},
		{"HEAD", "/kv/items/k", bearer, "GET, PUT, PATCH, DELETE"},
		{"OPTIONS", "/kv/items/k", bearer, "GET, PUT, PATCH, DELETE"},
		{"GET", "/kv/items/k/incr", bearer, "POST"},
		{"PUT", "/kv/items/k/incr", bearer, "POST"},
		{"PUT", "/kv/items", bearer, "GET, DELETE"},
		{"POST", "/kv/items", bearer, "GET, DELETE"},
		{"POST", "/kv/items/", bearer, "GET, PUT, DELETE"},
		{"PUT", "/cluster/status", bearer, "GET"},
		{"DELETE", "/cluster/status", bearer, "GET"},
		{"POST", "/healthz", "", "GET"}, // public route: no key needed to learn the method is wrong
		{"PUT", "/healthz", bearer, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := e.do(tt.method, tt.path, "", tt.auth)
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if tt.method == "HEAD" {
				if res.status != http.StatusMethodNotAllowed {
					t.Errorf("status = %d", res.status)
				}
				return
			}
			wantError(t, res, http.StatusMethodNotAllowed, "method_not_allowed")
		})
	}
	if n := e.st.callCount(); n != 0 {
		t.Errorf("store called %d times", n)
	}
}

func TestUnknownRoute(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, p := range []string{"/", "/nope", "/kv", "/kv/items/a/b", "/kv/items/a/incr/x", "/kv/items//a", "/healthz/", "/cluster/status/", "/KV/items/a", "//kv/items/a"} {
		for _, auth := range []string{"", bearer} {
			res := e.do("GET", p, "", auth)
			wantError(t, res, http.StatusNotFound, "not_found")
			if loc := res.header.Get("Location"); loc != "" {
				t.Errorf("%s: redirected to %q", p, loc)
			}
		}
	}
}

func TestClusterStatus(t *testing.T) {
	e := newTestEnv(t, nil)
	e.st.status = store.Status{
		NodeID: "n1", State: "Leader", LeaderID: "n1", LeaderAddr: "10.0.0.1:7000",
		Term: 3, CommitIndex: 42, AppliedIndex: 41,
		Voters: []store.Peer{{ID: "n1", Addr: "10.0.0.1:7000"}, {ID: "n2", Addr: "10.0.0.2:7000"}},
		Keys:   7, ClusterID: "5f1c0de2", RaftLog: "wal",
		Build: store.Build{Version: "0.2.0", Formats: fsm.Formats{Codec: fsm.Range{Min: 1, Max: 2}, Ops: "1-9", Snapshot: fsm.Range{Min: 1, Max: 4}, Backup: fsm.Range{Min: 1, Max: 2}}},
	}
	res := e.do("GET", "/cluster/status", "", bearer)
	want := `{"data":{"nodeId":"n1","state":"Leader","leaderId":"n1","leaderAddr":"10.0.0.1:7000",` +
		`"term":3,"commitIndex":42,"appliedIndex":41,"voters":[{"id":"n1","addr":"10.0.0.1:7000"},` +
		`{"id":"n2","addr":"10.0.0.2:7000"}],"keys":7,"authDisabled":false,"insecurePeer":false,"clusterId":"5f1c0de2","raftLog":"wal",` +
		`"build":{"version":"0.2.0","goVersion":"` + runtime.Version() + `","revision":null,"modified":false,` +
		`"formats":{"codec":{"min":1,"max":2},"ops":"1-9","snapshot":{"min":1,"max":4},"backup":{"min":1,"max":2}}},"diskFailure":null}}` + "\n"
	if res.status != http.StatusOK || string(res.body) != want {
		t.Errorf("got %d %s\nwant %s", res.status, res.body, want)
	}

	// A node whose disk failed says what failed and when.
	e.st.status = store.Status{NodeID: "n1", State: "Shutdown", DiskFailure: &store.DiskFailure{
		Op: "store log entries", Err: "write raft.db: input/output error", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	res = e.do("GET", "/cluster/status", "", bearer)
	if wantDisk := `"diskFailure":{"op":"store log entries","error":"write raft.db: input/output error","at":"2026-01-02T03:04:05Z"}`; res.status != http.StatusOK || !strings.Contains(string(res.body), wantDisk) {
		t.Errorf("disk failed: got %d %s, want %s", res.status, res.body, wantDisk)
	}

	e.st.status = store.Status{NodeID: "n1", State: "Candidate"}
	var got statusData
	wantData(t, e.do("GET", "/cluster/status", "", bearer), http.StatusOK, &got)
	if got.Voters == nil || len(got.Voters) != 0 || got.LeaderID != "" {
		t.Errorf("no-leader status = %+v, want empty voters list", got)
	}
	if !strings.Contains(string(e.do("GET", "/cluster/status", "", bearer).body), `"voters":[]`) {
		t.Error("empty voters not encoded as []")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{APIKey: "k"}, true},
		{"full", Config{APIKey: "k", MaxValueBytes: 10, RequestTimeout: time.Second}, true},
		{"no key", Config{}, false},
		{"key with space", Config{APIKey: "a b"}, false},
		{"key with newline", Config{APIKey: "ab\n"}, false},
		{"negative size", Config{APIKey: "k", MaxValueBytes: -1}, false},
		{"huge size", Config{APIKey: "k", MaxValueBytes: 1 << 40}, false},
		{"negative timeout", Config{APIKey: "k", RequestTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			h, err := New(tt.cfg, newFakeStore())
			if (err == nil) != tt.ok || (h != nil) != tt.ok {
				t.Fatalf("New() = %v, %v", h, err)
			}
		})
	}
	if _, err := New(Config{APIKey: "k"}, nil); err == nil {
		t.Error("New accepted a nil Store")
	}
	d := Config{APIKey: "k"}.withDefaults()
	if d.MaxValueBytes != 1<<20 || d.RequestTimeout != 10*time.Second || d.Logger == nil {
		t.Errorf("defaults = %+v", d)
	}
}

func TestRequestLog(t *testing.T) {
	e := newTestEnv(t, nil)
	e.do("GET", "/kv/items/missing", "", bearer)
	e.do("GET", "/nope", "", "")
	e.srv.Close() // wait for handlers to finish logging
	logs := e.logs.String()
	for _, want := range []string{
		`level=DEBUG msg=request component=httpapi method=GET route=/kv/items/{key} status=404 latency_ms=`,
		`method=GET route=unmatched status=404`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestStatusDataMatchesStore(t *testing.T) {
	// Guards against store.Status growing a field the endpoint silently drops.
	// statusData adds fields of its own: authDisabled, insecurePeer, peerWarning.
	if got, want := reflect.TypeFor[statusData]().NumField(), reflect.TypeFor[store.Status]().NumField()+3; got != want {
		t.Errorf("statusData has %d fields, want store.Status's plus authDisabled, insecurePeer, peerWarning: %d", got, want)
	}
}
