package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

func TestErrorCodesMatchSentinels(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   []error
		retry  bool
	}{
		{404, `{"error":{"code":"not_found","message":"m","retryable":false}}`, []error{client.ErrNotFound}, false},
		{412, `{"error":{"code":"version_mismatch","message":"m","retryable":false,"currentVersion":7}}`, []error{client.ErrVersionMismatch}, false},
		{412, `{"error":{"code":"already_exists","message":"m","retryable":false,"currentVersion":7}}`, []error{client.ErrAlreadyExists}, false},
		{409, `{"error":{"code":"not_an_integer","message":"m","retryable":false}}`, []error{client.ErrNotAnInteger}, false},
		{409, `{"error":{"code":"overflow","message":"m","retryable":false}}`, []error{client.ErrOverflow}, false},
		{401, `{"error":{"code":"unauthorized","message":"m","retryable":false}}`, []error{client.ErrUnauthorized}, false},
		{403, `{"error":{"code":"forbidden","message":"m","retryable":false}}`, []error{client.ErrForbidden}, false},
		{422, `{"error":{"code":"idempotency_key_reused","message":"m","retryable":false}}`, []error{client.ErrIdempotencyKeyReused}, false},
		{507, `{"error":{"code":"insufficient_storage","message":"m","retryable":false}}`, []error{client.ErrInsufficientStorage}, false},
		{400, `{"error":{"code":"invalid_ttl","message":"m","retryable":false}}`, []error{client.ErrInvalid}, false},
		{413, `{"error":{"code":"too_large","message":"m","retryable":false}}`, []error{client.ErrInvalid}, false},
		{503, `{"error":{"code":"no_leader","message":"m","retryable":true}}`, []error{client.ErrUnavailable}, true},
		{503, `{"error":{"code":"outcome_unknown","message":"m","retryable":true}}`, []error{client.ErrUnavailable, client.ErrOutcomeUnknown}, true},
		{503, `<html>proxy</html>`, []error{client.ErrUnavailable}, true},
		{500, `{"error":{"code":"internal","message":"m","retryable":false}}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := newClient(t, []string{srv.URL})
			_, err := c.Get(context.Background(), "k")
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Retryable != tt.retry || ae.Endpoint != srv.URL {
				t.Fatalf("err = %#v", err)
			}
			for _, s := range tt.want {
				if !errors.Is(err, s) {
					t.Errorf("%v does not match %v", err, s)
				}
			}
			if errors.Is(err, client.ErrNotFound) != (tt.status == 404) {
				t.Errorf("%v: ErrNotFound match is wrong", err)
			}
			wantHits := int64(1)
			if tt.retry {
				wantHits = int64(fastRetry.MaxAttempts)
			}
			if hits.Load() != wantHits {
				t.Errorf("%d attempts, want %d", hits.Load(), wantHits)
			}
			if v, ok := client.CurrentVersion(err); ok != (tt.status == 412) || (ok && v != 7) {
				t.Errorf("CurrentVersion = %d, %v", v, ok)
			}
		})
	}
}

func TestScopedKeys(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	fake.AddAPIKey("reader", "read")
	fake.AddAPIKey("writer", "write")
	nodes := startNodes(t, fake, nil)
	withKey := func(k string) *client.Client {
		return newClient(t, urls(nodes), func(c *client.Config) { c.APIKey = k })
	}
	if _, err := withKey("wrong").Get(ctx, "k"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := withKey("").Get(ctx, "k"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no key: %v", err)
	}
	if _, err := withKey("reader").Put(ctx, "k", 1); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("read key writing: %v", err)
	}
	if _, err := withKey("writer").Put(ctx, "k", 1); err != nil {
		t.Fatalf("write key writing: %v", err)
	}
	if err := withKey("writer").Remove(ctx, "n3"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("write key on an admin route: %v", err)
	}
	if n := nodes[0].requests.Load(); n != 5 {
		t.Fatalf("%d requests: 401 and 403 must not be retried", n)
	}
}

func TestRetriesOnAnotherEndpoint(t *testing.T) {
	tests := []struct {
		name  string
		first func(t *testing.T, fake *kvfake.Server) string // URL of the failing first endpoint
	}{
		{"503 no_leader", func(t *testing.T, fake *kvfake.Server) string {
			return startNodes(t, fake, always(kvfake.Unavailable))[0].url
		}},
		{"connection refused", func(t *testing.T, _ *kvfake.Server) string { return closedURL(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := kvfake.New()
			good := startNodes(t, fake, nil)[0]
			c := newClient(t, []string{tt.first(t, fake), good.url})

			w, err := c.Put(ctx, "k", "v")
			if err != nil || !w.Created {
				t.Fatalf("put: %+v %v", w, err)
			}
			if it, err := c.Get(ctx, "k"); err != nil || string(it.Value) != `"v"` {
				t.Fatalf("get: %+v %v", it, err)
			}
			if fake.Applied() != 1 {
				t.Fatalf("applied %d times", fake.Applied())
			}
			// The failing endpoint was left behind: later calls start on the good one.
			if good.requests.Load() != 2 {
				t.Fatalf("the good endpoint served %d requests, want 2", good.requests.Load())
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	fake := kvfake.New()
	bad := startNodes(t, fake, always(kvfake.Unavailable), always(kvfake.Unavailable))

	c := newClient(t, urls(bad))
	_, err := c.Put(context.Background(), "k", 1)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if n := bad[0].requests.Load() + bad[1].requests.Load(); n != int64(fastRetry.MaxAttempts) {
		t.Fatalf("%d attempts, want %d", n, fastRetry.MaxAttempts)
	}
	// Attempts alternate between the endpoints.
	if d := bad[0].requests.Load() - bad[1].requests.Load(); d < -1 || d > 1 {
		t.Fatalf("attempts %d and %d are not spread over both endpoints", bad[0].requests.Load(), bad[1].requests.Load())
	}

	// The context bounds the retries: with a long backoff, the deadline ends the call.
	slow := newClient(t, urls(bad), func(c *client.Config) {
		c.Retry = client.RetryPolicy{MaxAttempts: 2, BaseDelay: 4 * time.Minute, MaxDelay: 4 * time.Minute}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = slow.Get(ctx, "k")
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want unavailable and deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the context did not bound the backoff")
	}
}

// recordKeys returns an injector that records the Idempotency-Key of every
// write it sees and injects fault into the first n writes.
func recordKeys(mu *sync.Mutex, keys *[]string, n int64, fault kvfake.Fault) kvfake.Injector {
	inner := firstN(n, fault, writes)
	return func(r *http.Request) kvfake.Fault {
		if writes(r) {
			mu.Lock()
			*keys = append(*keys, r.Header.Get("Idempotency-Key"))
			mu.Unlock()
		}
		return inner(r)
	}
}

func TestIdempotencyKeyReusedAcrossRetries(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	var mu sync.Mutex
	var keys []string
	// Each node refuses its first write with no_leader; every attempt is recorded.
	nodes := startNodes(t, fake,
		recordKeys(&mu, &keys, 1, kvfake.Unavailable),
		recordKeys(&mu, &keys, 1, kvfake.Unavailable),
		recordKeys(&mu, &keys, 0, kvfake.NoFault))
	c := newClient(t, urls(nodes))

	if _, err := c.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("attempts carried keys %q; want one key, three times", keys)
	}
	if _, err := c.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 || keys[3] == keys[0] {
		t.Fatalf("a new call reused the previous call's key: %q", keys)
	}
	if _, err := c.Put(ctx, "k", 2, client.IdempotencyKey("job-42")); err != nil || keys[4] != "job-42" {
		t.Fatalf("caller's key: %q %v", keys, err)
	}
	if _, err := c.Put(ctx, "k", 3, client.IdempotencyKey("job-42")); !errors.Is(err, client.ErrIdempotencyKeyReused) {
		t.Fatalf("same key, different request: %v", err)
	}
}

// TestClientRetriesAcrossLeaderKillWithoutDuplicates: the node a write
// reaches applies it and then dies before answering (503 outcome_unknown, or
// a dropped connection). The client retries on another node with the same
// idempotency key, gets the original result, and the write is applied once.
func TestClientRetriesAcrossLeaderKillWithoutDuplicates(t *testing.T) {
	for _, fault := range []kvfake.Fault{kvfake.OutcomeUnknown, kvfake.DropAfterApply} {
		t.Run(map[kvfake.Fault]string{kvfake.OutcomeUnknown: "outcome_unknown", kvfake.DropAfterApply: "connection dropped"}[fault], func(t *testing.T) {
			ctx := context.Background()
			fake := kvfake.New()
			nodes := startNodes(t, fake, firstN(1, fault, writes), nil, nil)
			c := newClient(t, urls(nodes))

			r, err := c.Incr(ctx, "balance", 100)
			if err != nil {
				t.Fatal(err)
			}
			if r.Value != 100 {
				t.Fatalf("incr answered %d, want 100 (the original result)", r.Value)
			}
			if fake.Applied() != 1 {
				t.Fatalf("the write was applied %d times", fake.Applied())
			}
			if nodes[0].requests.Load() != 1 || nodes[1].requests.Load() != 1 {
				t.Fatalf("attempts per node: %d, %d; want the retry on another node",
					nodes[0].requests.Load(), nodes[1].requests.Load())
			}
			it, err := c.Get(ctx, "balance")
			if err != nil || string(it.Value) != "100" || it.Version != r.Version {
				t.Fatalf("stored %s (version %d), %v; want 100 at version %d", it.Value, it.Version, err, r.Version)
			}

			// The same holds for create-only puts: the retry must not see its
			// own first attempt as "already exists".
			nodes2 := startNodes(t, fake, firstN(1, fault, writes), nil)
			c2 := newClient(t, urls(nodes2))
			w, err := c2.Put(ctx, "lock", "me", client.IfNoneMatch())
			if err != nil || !w.Created {
				t.Fatalf("create-only put across the kill: %+v %v", w, err)
			}
			if fake.Applied() != 2 {
				t.Fatalf("applied %d writes in all, want 2", fake.Applied())
			}
		})
	}
}

func TestUnsafeCallsAreNotReplayed(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	var transfers atomic.Int64
	outcome := func(r *http.Request) kvfake.Fault {
		if r.URL.Path == "/cluster/leader/transfer" {
			transfers.Add(1)
		}
		return kvfake.NoFault
	}
	// A node that answers a retryable 503 that does not prove nothing was done.
	timeoutSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"timeout","message":"m","retryable":true}}`))
	}))
	defer timeoutSrv.Close()
	good := startNodes(t, fake, outcome)

	c := newClient(t, []string{timeoutSrv.URL, good[0].url})
	if _, err := c.TransferLeader(ctx, "n2"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("transfer after a timeout was retried: %v", err)
	}
	if transfers.Load() != 0 {
		t.Fatal("transfer reached the second node")
	}

	// no_leader and refused connections prove nothing was done: retried.
	c = newClient(t, []string{closedURL(t), startNodes(t, fake, always(kvfake.Unavailable))[0].url, good[0].url})
	if leader, err := c.TransferLeader(ctx, "n2"); err != nil || leader != "n2" {
		t.Fatalf("transfer: %q %v", leader, err)
	}
	// So does a node whose disk failed: it answers disk_error before doing anything.
	diskFailed := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":{"code":"disk_error","message":"m","retryable":true,"reason":"disk"}}`))
	}))
	c = newClient(t, []string{diskFailed, good[0].url})
	if leader, err := c.TransferLeader(ctx, "n2"); err != nil || leader != "n2" {
		t.Fatalf("transfer after disk_error: %q %v", leader, err)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []client.Config{
		{},
		{Endpoints: []string{""}},
		{Endpoints: []string{"ftp://x"}},
		{Endpoints: []string{"http://x?a=b"}},
		{Endpoints: []string{"x:1"}, Retry: client.RetryPolicy{MaxAttempts: 0, BaseDelay: 1}},
		{Endpoints: []string{"x:1"}, Retry: client.RetryPolicy{MaxAttempts: 2, BaseDelay: 2, MaxDelay: 1}},
		// Retries that could outlive the cluster's 10-minute Idempotency-Key
		// window, once CallTimeout no longer cuts them.
		{Endpoints: []string{"x:1"}, CallTimeout: -1, Retry: client.RetryPolicy{MaxAttempts: 100, BaseDelay: time.Hour, MaxDelay: time.Hour}},
		{Endpoints: []string{"x:1"}, CallTimeout: -1, Retry: client.RetryPolicy{MaxAttempts: 30, BaseDelay: time.Second, MaxDelay: time.Second}},
		{Endpoints: []string{"x:1"}, CallTimeout: -1, Timeout: -1},
		{Endpoints: []string{"x:1"}, CallTimeout: 6 * time.Minute},
		{Endpoints: []string{"x:1"}, MaxConnsPerNode: -1},
		{Endpoints: []string{"x:1"}, HTTPClient: &http.Client{}, TLS: &client.TLSConfig{}},
		{Endpoints: []string{"http://x:1"}, TLS: &client.TLSConfig{}},
	}
	for _, cfg := range bad {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:8081", "https://kv.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	// The default call ends at DefaultCallTimeout, well inside the window;
	// without it the default policy's attempts could span about 2 minutes.
	if span := (client.Config{}).RetrySpan(); span != client.DefaultCallTimeout {
		t.Fatalf("default RetrySpan = %v, want DefaultCallTimeout", span)
	}
	if span := (client.Config{CallTimeout: -1}).RetrySpan(); span < time.Minute || span > client.MaxRetrySpan/2 {
		t.Fatalf("default attempt span = %v, want about 2 minutes", span)
	}
	for _, ok := range []client.Config{
		{Endpoints: []string{"x:1"}, Timeout: -1, Retry: client.NoRetry()},
		{Endpoints: []string{"x:1"}, Retry: client.RetryPolicy{MaxAttempts: 18, BaseDelay: time.Second, MaxDelay: time.Second}},
	} {
		if _, err := client.New(ok); err != nil {
			t.Errorf("New(%+v): %v", ok, err)
		}
	}
	if got := c.Endpoints(); got[0] != "http://127.0.0.1:8081" || got[1] != "https://kv.example" {
		t.Fatalf("endpoints %q", got)
	}
}
