package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

// clock is the fake cluster's clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSlidingSessions(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	fake := kvfake.New()
	fake.SetClock(clk.Now)
	fake.AddAPIKey("k", "write")
	kvSrv := httptest.NewServer(fake.Handler(nil))
	defer kvSrv.Close()
	kv, err := client.New(client.Config{Endpoints: []string{kvSrv.URL}, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer((&app{kv: kv, idle: 30 * time.Minute}).routes())
	defer web.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, web.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := do("GET", "/me", nil); code != 401 {
		t.Fatalf("before login: %d", code)
	}
	if code, body := do("POST", "/login", url.Values{"user": {"alice"}}); code != 200 || body != "welcome alice\n" {
		t.Fatalf("login: %d %q", code, body)
	}
	// Used every 20 minutes, the session outlives its original 30-minute expiry.
	for i := range 4 {
		clk.advance(20 * time.Minute)
		if code, body := do("GET", "/me", nil); code != 200 || body != "you are alice\n" {
			t.Fatalf("request %d, %v after login: %d %q", i, time.Duration(i+1)*20*time.Minute, code, body)
		}
	}
	// Idle for longer than the timeout, it ends.
	clk.advance(31 * time.Minute)
	if code, body := do("GET", "/me", nil); code != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("after idling: %d %q", code, body)
	}

	// Log in again, log out: the session is deleted from the store.
	do("POST", "/login", url.Values{"user": {"bob"}})
	if code, _ := do("GET", "/me", nil); code != 200 {
		t.Fatalf("second login: %d", code)
	}
	if code, _ := do("POST", "/logout", nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := do("GET", "/me", nil); code != 401 {
		t.Fatalf("after logout: %d", code)
	}
	for it, err := range kv.List(t.Context(), client.ListQuery{Prefix: "session/"}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("session %s is still stored after logout and expiry", it.Key)
	}
}
