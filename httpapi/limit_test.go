package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

func TestLimitConcurrencyAnswersOverloaded(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			entered.Done()
		}
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	h := LimitConcurrency(slow, 2)

	var done sync.WaitGroup
	for i := 0; i < 2; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/kv/items/a", nil))
			if rec.Code != http.StatusNoContent {
				t.Errorf("admitted request: %d", rec.Code)
			}
		}()
	}
	entered.Wait()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/kv/items/a", nil))
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Retryable bool   `json:"retryable"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || body.Error.Code != "overloaded" || !body.Error.Retryable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %s %v", rec.Code, rec.Body, rec.Header())
	}

	// /healthz is never refused.
	healthDone := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		healthDone <- rec.Code
	}()
	close(release)
	done.Wait()
	if code := <-healthDone; code != http.StatusNoContent {
		t.Fatalf("healthz: %d", code)
	}
	if LimitConcurrency(slow, 0) == nil {
		t.Fatal("nil handler")
	}
}

// TestMinIndexWaitsBounded: reads waiting for a minIndex end at the request
// deadline with 503 index_not_reached, and together hold at most half of
// --max-concurrent-requests, so plain requests are still served while they
// wait.
func TestMinIndexWaitsBounded(t *testing.T) {
	const timeout = time.Second
	st := newFakeStore()
	st.waitIndex = true
	st.items["k"] = store.Item{Key: "k", Value: []byte("1"), Version: 1}
	st.version = 5
	api, err := New(Config{APIKey: testAPIKey, RequestTimeout: timeout}, st)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(LimitConcurrency(api, 4)) // 2 slots for minIndex reads
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", bearer)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error.Code
	}

	type answer struct {
		status  int
		code    string
		elapsed time.Duration
	}
	waiting := make(chan answer, 2)
	for range 2 {
		go func() {
			start := time.Now()
			status, code := get("/kv/items/k?consistency=stale&minIndex=1000000")
			waiting <- answer{status, code, time.Since(start)}
		}()
	}
	deadline := time.Now().Add(timeout / 2)
	for {
		st.mu.Lock()
		calls := st.calls
		st.mu.Unlock()
		if calls == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two waiting reads did not reach the store (%d calls)", calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A third minIndex read, even spelled with an escape, is refused at once.
	for _, path := range []string{"/kv/items/k?minIndex=1000000", "/kv/items/k?min%49ndex=3"} {
		if status, code := get(path); status != http.StatusServiceUnavailable || code != "overloaded" {
			t.Errorf("%s while two minIndex reads wait: %d %s, want 503 overloaded", path, status, code)
		}
	}
	// Plain requests still get slots.
	for range 3 {
		if status, _ := get("/kv/items/k"); status != http.StatusOK {
			t.Errorf("plain read while minIndex reads wait: %d", status)
		}
	}
	for range 2 {
		a := <-waiting
		if a.status != http.StatusServiceUnavailable || a.code != "index_not_reached" {
			t.Errorf("waiting read: %d %s, want 503 index_not_reached", a.status, a.code)
		}
		if a.elapsed < timeout*9/10 || a.elapsed > timeout+5*time.Second {
			t.Errorf("waiting read answered after %v, want about the %v request deadline", a.elapsed, timeout)
		}
	}
	// The slots are free again: a satisfied minIndex read is served.
	if status, _ := get("/kv/items/k?minIndex=5"); status != http.StatusOK {
		t.Errorf("minIndex read after the waits ended: %d", status)
	}
}

func TestHasMinIndex(t *testing.T) {
	for q, want := range map[string]bool{
		"": false, "minIndex=3": true, "consistency=stale&minIndex=3": true, "min%49ndex=3": true,
		"prefix=minIndex": false, "prefix=%41": false, "MinIndex=3": false, "minIndex": true,
	} {
		if got := hasMinIndex(q); got != want {
			t.Errorf("hasMinIndex(%q) = %v, want %v", q, got, want)
		}
	}
}
