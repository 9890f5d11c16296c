package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

var (
	readKey  = NewAPIKey("reader", ScopeRead, "reader-secret-0123456789")
	writeKey = NewAPIKey("writer", ScopeWrite, "writer-secret-0123456789")
	adminKey = NewAPIKey("ops", ScopeAdmin, "admin-secret-0123456789")
)

var scopeSecrets = map[Scope]string{
	ScopeRead:  "reader-secret-0123456789",
	ScopeWrite: "writer-secret-0123456789",
	ScopeAdmin: "admin-secret-0123456789",
}

// concretePath turns a route template into a request path.
func concretePath(template string) string {
	r := strings.NewReplacer("{key}", "k", "{id}", "n9")
	return r.Replace(template)
}

// TestEveryRouteHasAScope checks every registered route and method: without
// a key or with a wrong key it is 401 (public routes excepted); each scope
// below the route's is 403; the route's own scope and above pass auth. A new
// route fails here until it is classified in routeScopes.
func TestEveryRouteHasAScope(t *testing.T) {
	ring, err := NewKeyring([]APIKey{readKey, writeKey, adminKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.APIKey = ""; c.Keys = ring })
	a := &api{}
	for _, rt := range a.routeTable() {
		for _, m := range rt.methods {
			name := m.method + " " + rt.template
			if rt.public {
				continue
			}
			need, ok := routeScopes[name]
			if !ok {
				t.Errorf("%s has no entry in routeScopes: classify it as read, write or admin", name)
				continue
			}
			path := concretePath(rt.template)
			for _, auth := range []string{"", "Bearer wrong-secret-0123456789", "Bearer " + testAPIKey} {
				res := e.do(m.method, path, "", auth)
				wantError(t, res, http.StatusUnauthorized, "unauthorized")
			}
			for scope := ScopeRead; scope <= ScopeAdmin; scope++ {
				res := e.do(m.method, path, "", "Bearer "+scopeSecrets[scope])
				switch {
				case scope < need:
					body := wantError(t, res, http.StatusForbidden, "forbidden")
					if !strings.Contains(body.Message, need.String()) {
						t.Errorf("%s with %s: message %q does not name the needed scope", name, scope, body.Message)
					}
				case res.status == http.StatusUnauthorized || res.status == http.StatusForbidden:
					t.Errorf("%s with %s scope: %d %s", name, scope, res.status, res.body)
				}
			}
		}
	}
	for name := range routeScopes {
		if !strings.Contains(name, " /") {
			t.Errorf("routeScopes key %q is not \"METHOD template\"", name)
		}
	}
}

func TestInsecureNoAuthServesWithoutKeys(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.APIKey = ""; c.InsecureNoAuth = true })
	res := e.do("PUT", "/kv/items/k", `{"value":1}`, "")
	if res.status != http.StatusCreated {
		t.Fatalf("PUT without a key, auth off: %d %s", res.status, res.body)
	}
	res = e.do("GET", "/cluster/status", "", "")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"authDisabled":true`) {
		t.Fatalf("status must report disabled auth: %d %s", res.status, res.body)
	}
	if !strings.Contains(e.logs.String(), "authentication is DISABLED") {
		t.Fatal("no warning logged")
	}
	if err := (Config{InsecureNoAuth: true, APIKey: "x"}).Validate(); err == nil {
		t.Fatal("InsecureNoAuth with a key accepted")
	}
	if err := (Config{}).Validate(); err == nil {
		t.Fatal("no credentials accepted")
	}
}

func TestKeyringReloadTakesEffect(t *testing.T) {
	ring, err := NewKeyring([]APIKey{readKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.APIKey = ""; c.Keys = ring })
	if res := e.do("GET", "/kv/items/k", "", "Bearer "+scopeSecrets[ScopeRead]); res.status == http.StatusUnauthorized {
		t.Fatalf("reader before reload: %d", res.status)
	}
	if err := ring.Replace([]APIKey{writeKey}); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.do("GET", "/kv/items/k", "", "Bearer "+scopeSecrets[ScopeRead]), http.StatusUnauthorized, "unauthorized")
	if res := e.do("GET", "/kv/items/k", "", "Bearer "+scopeSecrets[ScopeWrite]); res.status == http.StatusUnauthorized {
		t.Fatalf("writer after reload: %d", res.status)
	}
	if !strings.Contains(e.logs.String(), "key=writer") {
		t.Fatal("request log lacks the key name")
	}
	if strings.Contains(e.logs.String(), scopeSecrets[ScopeWrite]) {
		t.Fatal("a secret reached the log")
	}
}

// TestPublicRoutesAreListed lists every route served without a key: the
// probes, the dashboard's static assets (package ui), which hold no data,
// and /openapi.yaml, the API's shape, which is no secret and which clients
// need before they have a key;
// every call the dashboard makes for data goes through the scoped routes
// above. A new public route fails here until it is added on purpose.
func TestPublicRoutesAreListed(t *testing.T) {
	want := map[string]bool{
		"GET /healthz": true, "GET /readyz": true, "GET /openapi.yaml": true,
		"GET /ui": true, "GET /ui/": true, "GET /ui/{asset}": true,
	}
	for _, metricsPublic := range []bool{false, true} {
		a := &api{cfg: Config{MetricsPublic: metricsPublic}}
		got := map[string]bool{}
		for _, rt := range a.routeTable() {
			for _, m := range rt.methods {
				if rt.public {
					got[m.method+" "+rt.template] = true
				}
			}
		}
		for name := range got {
			if !want[name] && !(metricsPublic && name == "GET /metrics") {
				t.Errorf("%s is served without a key but is not listed as public", name)
			}
		}
		for name := range want {
			if !got[name] {
				t.Errorf("%s is listed as public but is not a public route", name)
			}
		}
	}
}

// TestOpenAPIAndNotFound checks GET /openapi.yaml and that the
// unmatched-path message names every route template.
func TestOpenAPIAndNotFound(t *testing.T) {
	e := newTestEnv(t, nil)
	res := e.do("GET", "/openapi.yaml", "", "")
	if ct := res.header.Get("Content-Type"); res.status != http.StatusOK || ct != "application/yaml" || !strings.HasPrefix(string(res.body), "openapi: 3.1") {
		t.Fatalf("GET /openapi.yaml without a key: %d %s %.40q", res.status, ct, res.body)
	}
	body := wantError(t, e.do("GET", "/no/such/route", "", bearer), http.StatusNotFound, "not_found")
	for _, rt := range Routes() {
		if rt.Template != "/kv/items/" && !strings.Contains(body.Message, rt.Template) {
			t.Errorf("the not-found message %q does not name %s", body.Message, rt.Template)
		}
	}
}
