package httpapi

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

var generatedID = regexp.MustCompile(`^[0-9A-V]{8}-[0-9a-z]+$`)

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name, sent string
		echoed     bool
	}{
		{"sane", "req-7f3a/9:trace=abc", true},
		{"max length", strings.Repeat("x", 128), true},
		{"too long", strings.Repeat("x", 129), false},
		{"space", "two words", false},
		{"non-ASCII", "réq", false},
		{"tab", "a\tb", false},
		{"absent", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.sent != "" {
				hdr["X-Request-Id"] = tc.sent
			}
			for _, auth := range []string{bearer, ""} { // success and a 401 alike
				res := e.doH("GET", "/kv/items/missing", "", auth, hdr)
				got := res.header.Values("X-Request-Id")
				if len(got) != 1 {
					t.Fatalf("X-Request-Id = %q, want one value", got)
				}
				if tc.echoed && got[0] != tc.sent {
					t.Fatalf("sent %q, got %q", tc.sent, got[0])
				}
				if !tc.echoed && !generatedID.MatchString(got[0]) {
					t.Fatalf("sent %q, got %q, want a generated id", tc.sent, got[0])
				}
			}
		})
	}
	a := e.do("GET", "/healthz", "", "").header.Get("X-Request-Id")
	b := e.do("GET", "/healthz", "", "").header.Get("X-Request-Id")
	if a == b || !generatedID.MatchString(a) {
		t.Fatalf("generated ids %q and %q: want distinct ids", a, b)
	}
}

func TestRequestLogLevels(t *testing.T) {
	cases := []struct {
		mode       RequestLogMode
		ok, failed string // the level of a 200 and of a 503
	}{
		{"", "DEBUG", "INFO"},
		{RequestLogErrors, "DEBUG", "INFO"},
		{RequestLogAll, "INFO", "INFO"},
		{RequestLogOff, "DEBUG", "DEBUG"},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			e := newTestEnv(t, func(c *Config) { c.RequestLog = tc.mode })
			e.do("PUT", "/kv/items/k", `{"value": 1}`, bearer)
			e.doH("GET", "/kv/items/k", "", bearer, map[string]string{"X-Request-Id": "ok-1"})
			e.st.setErr(fmt.Errorf("%w: test", store.ErrNoLeader))
			res := e.doH("GET", "/kv/items/k", "", bearer, map[string]string{"X-Request-Id": "fail-1"})
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d", res.status)
			}
			e.srv.Close() // wait for handlers to finish logging
			logs := e.logs.String()
			for id, level := range map[string]string{"ok-1": tc.ok, "fail-1": tc.failed} {
				status := map[string]int{"ok-1": 200, "fail-1": 503}[id]
				want := fmt.Sprintf(`level=%s msg=request component=httpapi method=GET route=/kv/items/{key} status=%d latency_ms=`, level, status)
				line := lineWith(logs, "request_id="+id)
				if !strings.HasPrefix(line[strings.Index(line, "level="):], want) || !strings.Contains(line, "key=default") || !strings.Contains(line, "remote=127.0.0.1:") {
					t.Errorf("request log line %q, want it to start with %q and name the key and remote address", line, want)
				}
			}
		})
	}
	if _, err := New(Config{APIKey: testAPIKey, RequestLog: "sometimes"}, newFakeStore()); err == nil {
		t.Error("New accepted RequestLog \"sometimes\"")
	}
}

func TestUnauthorizedRequestsAreLoggedAtInfo(t *testing.T) {
	e := newTestEnv(t, nil)
	e.doH("GET", "/kv/items/k", "", "Bearer wrong-secret-0123456789", map[string]string{"X-Request-Id": "bad-key"})
	e.srv.Close()
	if line := lineWith(e.logs.String(), "request_id=bad-key"); !strings.Contains(line, "level=INFO") || !strings.Contains(line, "status=401") {
		t.Errorf("401 logged as %q", line)
	}
}

// lineWith returns the first log line containing s, or "".
func lineWith(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
