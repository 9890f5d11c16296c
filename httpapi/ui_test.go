package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/ui"
)

// NodeReports of the fake: one report per member, the first unreachable
// when the fake has an error to report for it.
func (f *fakeStore) NodeReports(ctx context.Context) ([]store.NodeReport, error) {
	if err := f.enter(ctx, ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]store.NodeReport, 0, len(f.members))
	for _, n := range f.members {
		r := store.NodeReport{ID: n.ID, PeerAddr: n.PeerAddr, State: "Follower", Term: 3, LastContactMs: -1}
		if n.Leader {
			r.State = "Leader"
		}
		if !n.Healthy {
			r = store.NodeReport{ID: n.ID, PeerAddr: n.PeerAddr, Error: "connection refused"}
		}
		out = append(out, r)
	}
	return out, nil
}

// TestUIServesEveryAssetWithSecurityHeaders fetches the page and every
// asset without a key, as a browser first does, and checks the type and the
// headers that confine the page.
func TestUIServesEveryAssetWithSecurityHeaders(t *testing.T) {
	e := newTestEnv(t, nil)
	paths := map[string]string{"/ui/": "index.html"}
	for _, n := range ui.Names() {
		paths["/ui/"+n] = n
	}
	for path, name := range paths {
		res := e.do("GET", path, "", "")
		if res.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
		a, _ := ui.Lookup(name)
		if string(res.body) != string(a.Body) {
			t.Errorf("GET %s: body is not the embedded %s", path, name)
		}
		if got := res.header.Get("Content-Type"); got != a.ContentType {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, a.ContentType)
		}
		for k, v := range ui.Header() {
			if got := res.header.Get(k); got != v[0] {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, v[0])
			}
		}
		if res.header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: no request id: the assets must go through the API's request handling", path)
		}
	}
	csp := e.do("GET", "/ui/", "", "").header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline or eval'd code", csp)
	}
}

func TestUIRouting(t *testing.T) {
	e := newTestEnv(t, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d Location %q, want 308 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/nope.js", "/ui/assets/app.js", "/ui/..%2Fui.go", "/ui/app.js/x"} {
		wantError(t, e.do("GET", path, "", ""), http.StatusNotFound, "not_found")
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		wantError(t, e.do(m, "/ui/", "", ""), http.StatusMethodNotAllowed, "method_not_allowed")
		wantError(t, e.do(m, "/ui/app.js", "", ""), http.StatusMethodNotAllowed, "method_not_allowed")
	}
}

func TestWhoamiNamesTheKeyAndItsScope(t *testing.T) {
	ring, err := NewKeyring([]APIKey{readKey, writeKey, adminKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.APIKey = ""; c.Keys = ring })
	for scope, name := range map[Scope]string{ScopeRead: "reader", ScopeWrite: "writer", ScopeAdmin: "ops"} {
		res := e.do("GET", "/auth/whoami", "", "Bearer "+scopeSecrets[scope])
		if res.status != http.StatusOK {
			t.Fatalf("whoami as %s: %d %s", name, res.status, res.body)
		}
		var got struct {
			Data struct{ Name, Scope string } `json:"data"`
		}
		if err := json.Unmarshal(res.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Data.Name != name || got.Data.Scope != scope.String() {
			t.Errorf("whoami as %s = %+v", name, got.Data)
		}
		if strings.Contains(string(res.body), scopeSecrets[scope]) {
			t.Errorf("whoami echoes the secret: %s", res.body)
		}
	}
	wantError(t, e.do("GET", "/auth/whoami", "", ""), http.StatusUnauthorized, "unauthorized")
}

func TestClusterOverviewListsEveryNode(t *testing.T) {
	e := newTestEnv(t, nil)
	e.st.mu.Lock()
	e.st.members = []store.NodeInfo{
		{ID: "n1", PeerAddr: "a:1", Leader: true, Healthy: true},
		{ID: "n2", PeerAddr: "a:2", Healthy: true},
		{ID: "n3", PeerAddr: "a:3"},
	}
	e.st.mu.Unlock()
	res := e.do("GET", "/cluster/overview", "", "Bearer "+testAPIKey)
	if res.status != http.StatusOK {
		t.Fatalf("overview: %d %s", res.status, res.body)
	}
	var got struct {
		Data struct {
			Nodes []store.NodeReport `json:"nodes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	n := got.Data.Nodes
	if len(n) != 3 || n[0].State != "Leader" || n[1].State != "Follower" || n[2].Error == "" {
		t.Fatalf("overview nodes = %+v", n)
	}
	e.st.setErr(store.ErrShuttingDown)
	if res := e.do("GET", "/cluster/overview", "", "Bearer "+testAPIKey); res.status != http.StatusServiceUnavailable {
		t.Fatalf("overview while shutting down: %d %s", res.status, res.body)
	}
}
