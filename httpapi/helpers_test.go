package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAPIKey = "s3cret-test-key"

// bearer is a valid Authorization header value.
const bearer = "Bearer " + testAPIKey

// testEnv is the API over a real listener, backed by a fake store.
type testEnv struct {
	t    *testing.T
	srv  *httptest.Server
	st   *fakeStore
	logs *lockedBuffer // everything the API logged, also echoed to t.Log
}

func newTestEnv(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	st := newFakeStore()
	logs := &lockedBuffer{}
	cfg := Config{
		APIKey: testAPIKey,
		// Watch streams in these tests end quickly unless a test says otherwise.
		Watch: WatchConfig{MaxDuration: 300 * time.Millisecond, ProgressInterval: 100 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter{t}),
			&slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg.Clock = func() time.Time {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.now
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(cfg, st)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // waits for in-flight handlers, so none logs after the test
	return &testEnv{t: t, srv: srv, st: st, logs: logs}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends method rawPath exactly as given (no client-side escaping or
// validation) with an optional body and Authorization header ("" for none).
func (e *testEnv) do(method, rawPath, body, auth string) result {
	e.t.Helper()
	return e.doH(method, rawPath, body, auth, nil)
}

// doH is do with extra request headers.
func (e *testEnv) doH(method, rawPath, body, auth string, hdr map[string]string) result {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL, rd)
	if err != nil {
		e.t.Fatalf("NewRequest: %v", err)
	}
	req.URL.Opaque = rawPath
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, rawPath, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, rawPath, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// apiErrorBody is the decoded error envelope.
type apiErrorBody struct {
	Code           string               `json:"code"`
	Message        string               `json:"message"`
	Retryable      bool                 `json:"retryable"`
	CurrentVersion json.RawMessage      `json:"currentVersion"` // 412 only
	Reason         string               `json:"reason"`         // not_ready only
	FailedChecks   []txnFailedCheckBody `json:"failedChecks"`   // txn_check_failed only
	FailedOp       *txnFailedOpBody     `json:"failedOp"`       // txn_op_failed only
	OldestIndex    *uint64              `json:"oldestIndex"`    // 410 compacted only
}

// wantError checks res is a JSON error with the given status and code and returns it.
func wantError(t *testing.T, res result, status int, code string) apiErrorBody {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var env struct {
		Error *apiErrorBody `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("body is not an error envelope (%v): %s", err, res.body)
	}
	if env.Error.Code != code {
		t.Errorf("code = %q, want %q (message %q)", env.Error.Code, code, env.Error.Message)
	}
	if !strings.HasSuffix(env.Error.Message, ".") || len(env.Error.Message) < 20 {
		t.Errorf("message %q is not a sentence", env.Error.Message)
	}
	return *env.Error
}

// wantData checks res is a JSON success with the given status and decodes its data into v.
func wantData(t *testing.T, res result, status int, v any) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Data == nil {
		t.Fatalf("body is not a data envelope (%v): %s", err, res.body)
	}
	if v != nil {
		if err := json.Unmarshal(env.Data, v); err != nil {
			t.Fatalf("decoding data: %v: %s", err, env.Data)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
