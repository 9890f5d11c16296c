package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func benchHandler(b *testing.B) (http.Handler, *fakeStore) {
	b.Helper()
	st := newFakeStore()
	h, err := New(Config{APIKey: testAPIKey}, st)
	if err != nil {
		b.Fatal(err)
	}
	return h, st
}

const benchValue = `{"user": {"id": 9223372036854775809, "name": "Zoë", "tags": ["a", "b", "c"], "score": 0.1000000000000000000000000001}}`

func BenchmarkGetHandler(b *testing.B) {
	h, _ := benchHandler(b)
	put := httptest.NewRequest("PUT", "/kv/items/user%2F42", strings.NewReader(`{"value": `+benchValue+`, "ttlSeconds": 60}`))
	put.Header.Set("Authorization", bearer)
	h.ServeHTTP(httptest.NewRecorder(), put)

	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/kv/items/user%2F42", nil)
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkPutHandler(b *testing.B) {
	h, _ := benchHandler(b)
	body := `{"value": ` + benchValue + `, "ttlSeconds": 60}`
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest("PUT", "/kv/items/user%2F42", strings.NewReader(body))
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
