package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// FuzzPutBody sends arbitrary bodies to PUT. The handler must never panic or
// answer 500, and may answer 2xx only for a body that is valid by an
// independent reading of the contract, storing exactly its compacted value.
func FuzzPutBody(f *testing.F) {
	for _, s := range []string{
		`{"value": 1}`,
		`{"value": null, "ttlSeconds": 0.5}`,
		`{"value": {"a": [1, 2, {"b": "c"}]}, "ttlSeconds": 86400}`,
		`{"value": 9223372036854775809}`,
		`{"value": "\u00e9\ud83d\ude00"}`,
		`{"value": 1, "ttlSeconds": "60"}`,
		`{"value": 1, "ttlSeconds": 1e400}`,
		`{"value": 1} {}`,
		`{"ttlSeconds": 1}`,
		`[1]`,
		``,
		`{"value": 1, "value": 2}`,
	} {
		f.Add([]byte(s))
	}
	st := newFakeStore()
	h, err := New(Config{APIKey: testAPIKey, MaxValueBytes: 4096}, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		calls := st.callCount()
		req := httptest.NewRequest("PUT", "/kv/items/fuzz", bytes.NewReader(body))
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if st.callCount() != calls {
				t.Fatalf("store called for rejected body %q", body)
			}
			return
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}

		// Accepted: check validity independently of parseSetBody.
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("accepted a non-object %q: %v", body, err)
		}
		value, ok := fields["value"]
		if !ok {
			t.Fatalf("accepted a body without value: %q", body)
		}
		for name := range fields {
			if name != "value" && name != "ttlSeconds" && name != "keepTtl" {
				t.Fatalf("accepted unknown field %q in %q", name, body)
			}
		}
		if ttl, ok := fields["ttlSeconds"]; ok && string(ttl) != "null" {
			secs, err := strconv.ParseFloat(string(ttl), 64)
			if err != nil || secs <= 0 || secs > 315576000.001 {
				t.Fatalf("accepted ttlSeconds %s", ttl)
			}
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, value); err != nil {
			t.Fatal(err)
		}
		if _, got, _ := st.last(); !bytes.Equal(got, compact.Bytes()) {
			t.Fatalf("stored %q, want %q", got, compact.Bytes())
		}
	})
}
