package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// storeCalls is one request per Store method.
var storeCalls = []struct{ method, path, body string }{
	{"GET", "/kv/items/k", ""},
	{"PUT", "/kv/items/k", `{"value": 1}`},
	{"DELETE", "/kv/items/k", ""},
	{"PATCH", "/kv/items/k", `{"ttlSeconds": 5}`},
	{"POST", "/kv/items/k/incr", ""},
	{"GET", "/kv/items?prefix=a", ""},
	{"DELETE", "/kv/items?prefix=a", ""},
	{"GET", "/cluster/status", ""},
}

func TestStoreErrorMapping(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		err        error
		status     int
		code       string
		retryable  bool
		retryAfter bool
	}{
		{store.ErrNotFound, 404, "not_found", false, false},
		{store.ErrNoLeader, 503, "no_leader", true, true},
		{store.ErrShuttingDown, 503, "shutting_down", true, true},
		{store.ErrTimeout, 503, "timeout", true, true},
		{store.ErrQuotaExceeded, 507, "insufficient_storage", false, false},
		{store.ErrClockOffset, 503, "clock_offset", true, true},
		{store.ErrDiskFailed, 503, "disk_error", true, true},
		{context.DeadlineExceeded, 503, "timeout", true, true},
		{context.Canceled, 503, "canceled", true, false},
		// outcome_unknown depends on the request too: TestOutcomeUnknownRetryableOnlyWhenSafe.
		{errors.New("disk on fire"), 500, "internal", false, false},
	}
	for _, tt := range tests {
		for _, c := range storeCalls {
			t.Run(fmt.Sprintf("%v/%s %s", tt.err, c.method, c.path), func(t *testing.T) {
				e.st.setErr(fmt.Errorf("store: forwarding to n2: %w", tt.err))
				res := e.do(c.method, c.path, c.body, bearer)
				eb := wantError(t, res, tt.status, tt.code)
				if eb.Retryable != tt.retryable {
					t.Errorf("retryable = %v, want %v", eb.Retryable, tt.retryable)
				}
				if got := res.header.Get("Retry-After"); (got == "1") != tt.retryAfter || (got != "" && got != "1") {
					t.Errorf("Retry-After = %q, want set=%v", got, tt.retryAfter)
				}
				if strings.Contains(eb.Message, "fire") || strings.Contains(eb.Message, "n2") {
					t.Errorf("message leaks the internal error: %q", eb.Message)
				}
			})
		}
	}
	e.st.setErr(nil)

	e.srv.Close()
	logs := e.logs.String()
	if !strings.Contains(logs, `level=ERROR msg="request failed" component=httpapi method=PUT path=/kv/items/k key=default err="store: forwarding to n2: disk on fire"`) {
		t.Errorf("internal error not logged with method and path:\n%s", logs)
	}
	if strings.Contains(logs, "level=ERROR msg=\"request failed\" component=httpapi method=GET path=/kv/items/k key=default err=\"store: forwarding to n2: key not found\"") {
		t.Error("a mapped error was logged as internal")
	}
}

func TestRequestTimeout(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	e.st.block = true
	for _, c := range storeCalls {
		start := time.Now()
		res := e.do(c.method, c.path, c.body, bearer)
		wantError(t, res, http.StatusServiceUnavailable, "timeout")
		if res.header.Get("Retry-After") != "1" {
			t.Error("no Retry-After")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s %s took %v", c.method, c.path, d)
		}
	}
	if !e.st.lastHadDDL {
		t.Error("store context had no deadline")
	}
}

func TestDefaultDeadlinePassed(t *testing.T) {
	e := newTestEnv(t, nil)
	e.do("GET", "/kv/items/k", "", bearer)
	if !e.st.lastHadDDL {
		t.Error("store context had no deadline")
	}
}

// panicStore panics in Read, standing in for a bug anywhere below the handler.
type panicStore struct{ *fakeStore }

func (panicStore) Read(context.Context, string, store.ReadOptions) (store.Item, store.ReadInfo, error) {
	panic("boom")
}

func TestPanicBecomesInternal(t *testing.T) {
	logs := &lockedBuffer{}
	h, err := New(Config{APIKey: testAPIKey, Logger: testLogger(logs)}, panicStore{newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &testEnv{t: t, srv: srv}
	wantError(t, e.do("GET", "/kv/items/k", "", bearer), http.StatusInternalServerError, "internal")
	srv.Close()
	if !strings.Contains(logs.String(), "panic serving request") {
		t.Errorf("panic not logged: %s", logs)
	}
}

// emptyValueStore returns an item without a value, breaking the Store contract.
type emptyValueStore struct{ *fakeStore }

func (emptyValueStore) Read(_ context.Context, key string, _ store.ReadOptions) (store.Item, store.ReadInfo, error) {
	return store.Item{Key: key, Version: 1}, store.ReadInfo{}, nil
}

func TestEmptyStoredValueIsInternal(t *testing.T) {
	h, err := New(Config{APIKey: testAPIKey}, emptyValueStore{newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := &testEnv{t: t, srv: srv}
	wantError(t, e.do("GET", "/kv/items/k", "", bearer), http.StatusInternalServerError, "internal")
}
