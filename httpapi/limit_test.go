package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
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
