package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
	"github.com/quorumkv/quorumkv/sessions/scsstore"
)

func TestLoginMeLogout(t *testing.T) {
	kvSrv := httptest.NewServer(kvfake.New().Handler(nil))
	t.Cleanup(kvSrv.Close)
	kv, err := client.New(client.Config{Endpoints: []string{kvSrv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	sm := scs.New()
	sm.Store = scsstore.New(kv)
	app := httptest.NewServer(newApp(sm))
	t.Cleanup(app.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	do := func(method, path string, want int, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, app.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(b), body) {
			t.Fatalf("%s %s: %d %q, want %d %q", method, path, resp.StatusCode, b, want, body)
		}
	}
	do("GET", "/me", 401, "not logged in")
	do("POST", "/login", 400, "user=")
	do("POST", "/login?user=alice", 200, "alice")
	do("GET", "/me", 200, "alice")
	do("POST", "/logout", 200, "logged out")
	do("GET", "/me", 401, "not logged in")
}
