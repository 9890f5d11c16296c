package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

type putData struct {
	Key       string  `json:"key"`
	Version   uint64  `json:"version"`
	ExpiresAt *string `json:"expiresAt"`
}

func TestPutGetDelete(t *testing.T) {
	e := newTestEnv(t, nil)

	var p putData
	wantData(t, e.do("PUT", "/kv/items/k1", `{"value": {"a": 1}}`, bearer), http.StatusCreated, &p)
	if p.Key != "k1" || p.Version != 1 || p.ExpiresAt != nil {
		t.Errorf("create = %+v", p)
	}
	wantData(t, e.do("PUT", "/kv/items/k1", `{"value": [1, 2]}`, bearer), http.StatusOK, &p)
	if p.Version != 2 {
		t.Errorf("replace = %+v", p)
	}

	res := e.do("GET", "/kv/items/k1", "", bearer)
	if want := `{"data":{"key":"k1","value":[1,2],"version":2,"expiresAt":null,"ttlRemainingMs":null}}` + "\n"; res.status != 200 || string(res.body) != want {
		t.Errorf("GET = %d %s, want %s", res.status, res.body, want)
	}
	if e.st.lastLevel != store.Linearizable {
		t.Errorf("read level = %v, want Linearizable", e.st.lastLevel)
	}

	res = e.do("DELETE", "/kv/items/k1", "", bearer)
	if want := `{"data":{"key":"k1","deleted":true}}` + "\n"; res.status != 200 || string(res.body) != want {
		t.Errorf("DELETE = %d %s", res.status, res.body)
	}
	res = e.do("DELETE", "/kv/items/k1", "", bearer)
	if want := `{"data":{"key":"k1","deleted":false}}` + "\n"; res.status != 200 || string(res.body) != want {
		t.Errorf("second DELETE = %d %s", res.status, res.body)
	}
	eb := wantError(t, e.do("GET", "/kv/items/k1", "", bearer), http.StatusNotFound, "not_found")
	if eb.Retryable {
		t.Error("not_found is retryable")
	}
}

// TestValueRoundTrip checks the value is stored and returned as exactly the
// compacted bytes the client sent, never decoded into Go numbers or strings.
func TestValueRoundTrip(t *testing.T) {
	e := newTestEnv(t, nil)
	values := map[string]string{
		"big int":         `9223372036854775809`,
		"big negative":    `-123456789012345678901234567890`,
		"long decimal":    `0.1000000000000000000000000001`,
		"exponent":        `1e400`,
		"exponent form":   `1.50E-7`,
		"negative zero":   `-0`,
		"unicode":         `"héllo wörld ✓ 日本語 😀"`,
		"escapes":         `"\u00e9 \ud83d\ude00 \" \\ \/ \b\f\n\r\t \u0000 \u2028"`,
		"html":            `"<a href=\"x\">&amp;</a>"`,
		"raw U+2028":      "\"line\u2028sep\"",
		"nested":          `{"a": [1, {"b": null, "c": [true, false]}], "d": {"e": {"f": "g"}}, "a": 2}`,
		"spaces in value": `  [ 1 ,  2 , "a b" ]  `,
		"null":            `null`,
		"true":            `true`,
		"empty string":    `""`,
		"empty object":    `{}`,
		"empty array":     `[]`,
	}
	i := 0
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			i++
			key := "rt" + string(rune('a'+i))
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(v)); err != nil {
				t.Fatal(err)
			}
			body := "{\n  \"value\" :\t" + v + " \n}\n"
			wantData(t, e.do("PUT", "/kv/items/"+key, body, bearer), http.StatusCreated, nil)
			if _, got, _ := e.st.last(); !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("stored %s, want %s", got, compact.Bytes())
			}
			res := e.do("GET", "/kv/items/"+key, "", bearer)
			want := `{"data":{"key":"` + key + `","value":` + compact.String() + `,"version":` +
				jsonNumber(e.st.version) + `,"expiresAt":null,"ttlRemainingMs":null}}` + "\n"
			if string(res.body) != want {
				t.Errorf("GET body\n got %s\nwant %s", res.body, want)
			}
		})
	}
}

func jsonNumber(v uint64) string { b, _ := json.Marshal(v); return string(b) }

func TestPutNullValue(t *testing.T) {
	e := newTestEnv(t, nil)
	wantData(t, e.do("PUT", "/kv/items/n", `{"value": null}`, bearer), http.StatusCreated, nil)
	if _, v, _ := e.st.last(); string(v) != "null" {
		t.Errorf("stored %q, want null", v)
	}
	res := e.do("GET", "/kv/items/n", "", bearer)
	if !strings.Contains(string(res.body), `"value":null,`) {
		t.Errorf("GET = %s", res.body)
	}
}

func TestPutTTL(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		ttl  string // raw JSON; "" omits the field
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"null", 0, true},
		{"0.5", 500 * time.Millisecond, true},
		{"1.0004", time.Second, true},
		{"1.0005", 1001 * time.Millisecond, true},
		{"1.00049999999999999999", time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"60", time.Minute, true},
		{"0.001", time.Millisecond, true},
		{"0.0005", time.Millisecond, true},
		{"1e3", 1000 * time.Second, true},
		{"1E-3", time.Millisecond, true},
		{"2.5e1", 25 * time.Second, true},
		{"315576000", 315576000 * time.Second, true},
		{"315575999.9999", 315576000 * time.Second, true},
		{"0.0004", 0, false},
		{"0.00049999", 0, false},
		{"0", 0, false},
		{"0.0", 0, false},
		{"-0", 0, false},
		{"-1", 0, false},
		{"-0.5", 0, false},
		{"315576000.001", 0, false},
		{"315576001", 0, false},
		{"1e9", 0, false},
		{"1e400", 0, false},
		{"1e-400", 0, false},
		{`"60"`, 0, false},
		{`"NaN"`, 0, false},
		{`"Infinity"`, 0, false},
		{"true", 0, false},
		{"false", 0, false},
		{"[60]", 0, false},
		{`{"s": 60}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.ttl, func(t *testing.T) {
			body := `{"value": "v"}`
			if tt.ttl != "" {
				body = `{"value": "v", "ttlSeconds": ` + tt.ttl + `}`
			}
			calls := e.st.callCount()
			res := e.do("PUT", "/kv/items/ttl", body, bearer)
			if !tt.ok {
				wantError(t, res, http.StatusBadRequest, "invalid_ttl")
				if e.st.callCount() != calls {
					t.Error("store called for an invalid ttl")
				}
				return
			}
			wantData(t, res, res.status, nil)
			if _, _, got := e.st.last(); got != tt.want {
				t.Errorf("ttl passed to store = %v, want %v", got, tt.want)
			}
		})
	}
	// Not JSON at all is a JSON error, not a TTL error.
	wantError(t, e.do("PUT", "/kv/items/ttl", `{"value": 1, "ttlSeconds": NaN}`, bearer), http.StatusBadRequest, "invalid_json")
	wantError(t, e.do("PUT", "/kv/items/ttl", `{"value": 1, "ttlSeconds": +5}`, bearer), http.StatusBadRequest, "invalid_json")
}

func TestExpiresAtFormat(t *testing.T) {
	e := newTestEnv(t, nil) // fake clock: 2026-11-26T07:29:59.623456789+01:00

	var p putData
	wantData(t, e.do("PUT", "/kv/items/x", `{"value": 1, "ttlSeconds": 0.5}`, bearer), http.StatusCreated, &p)
	if p.ExpiresAt == nil || *p.ExpiresAt != "2026-11-26T06:30:00.123Z" {
		t.Errorf("PUT expiresAt = %v, want 2026-11-26T06:30:00.123Z", p.ExpiresAt)
	}
	res := e.do("GET", "/kv/items/x", "", bearer)
	if !strings.Contains(string(res.body), `"expiresAt":"2026-11-26T06:30:00.123Z","ttlRemainingMs":500}`) {
		t.Errorf("GET = %s", res.body)
	}

	// Whole seconds still carry three fractional digits.
	e.st.now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	wantData(t, e.do("PUT", "/kv/items/y", `{"value": 1, "ttlSeconds": 60}`, bearer), http.StatusCreated, &p)
	if p.ExpiresAt == nil || *p.ExpiresAt != "2026-01-02T03:05:05.000Z" {
		t.Errorf("PUT expiresAt = %v", p.ExpiresAt)
	}

	res = e.do("PUT", "/kv/items/z", `{"value": 1}`, bearer)
	if !strings.Contains(string(res.body), `"expiresAt":null`) {
		t.Errorf("no-ttl PUT = %s", res.body)
	}
}

func TestKeys(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		name, segment string
		want          string // stored key; "" means 400 invalid_key
	}{
		{"plain", "abc", "abc"},
		{"encoded slash", "a%2Fb", "a/b"},
		{"lower-case escape", "a%2fb", "a/b"},
		{"encoded percent", "100%25", "100%"},
		{"plus is literal", "a+b", "a+b"},
		{"space", "a%20b", "a b"},
		{"dot dot", "..", ".."},
		{"encoded dot dot", "%2E%2E", ".."},
		{"unicode", "%E2%9C%93caf%C3%A9", "✓café"},
		{"no-break space", "%C2%A0", "\u00a0"},
		{"512 bytes", strings.Repeat("k", 512), strings.Repeat("k", 512)},
		{"512 bytes of 2-byte runes", strings.Repeat("%C3%A9", 256), strings.Repeat("é", 256)},
		{"513 bytes", strings.Repeat("k", 513), ""},
		{"513 bytes decoded", strings.Repeat("%C3%A9", 256) + "k", ""},
		{"invalid UTF-8", "%FF", ""},
		{"truncated UTF-8", "a%C3", ""},
		{"NUL", "%00", ""},
		{"tab", "a%09b", ""},
		{"newline", "a%0A", ""},
		{"DEL", "%7F", ""},
		{"C1 first", "%C2%80", ""},
		{"C1 last", "%C2%9F", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/kv/items/" + tt.segment
			calls := e.st.callCount()
			res := e.do("PUT", path, `{"value": 1}`, bearer)
			if tt.want == "" {
				wantError(t, res, http.StatusBadRequest, "invalid_key")
				wantError(t, e.do("GET", path, "", bearer), http.StatusBadRequest, "invalid_key")
				wantError(t, e.do("DELETE", path, "", bearer), http.StatusBadRequest, "invalid_key")
				if e.st.callCount() != calls {
					t.Error("store called with an invalid key")
				}
				return
			}
			var p putData
			wantData(t, res, res.status, &p) // some cases repeat a key: 200 or 201
			if res.status != http.StatusCreated && res.status != http.StatusOK {
				t.Fatalf("status = %d", res.status)
			}
			if got, _, _ := e.st.last(); got != tt.want || p.Key != tt.want {
				t.Errorf("stored key %q, response key %q, want %q", got, p.Key, tt.want)
			}
			var g struct{ Key string }
			wantData(t, e.do("GET", path, "", bearer), http.StatusOK, &g)
			if g.Key != tt.want {
				t.Errorf("GET key = %q", g.Key)
			}
		})
	}

	t.Run("empty", func(t *testing.T) {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			wantError(t, e.do(m, "/kv/items/", `{"value": 1}`, bearer), http.StatusBadRequest, "invalid_key")
		}
	})

	// net/http itself rejects a request line with a malformed escape before
	// any handler runs (parseKey covers the case too, see TestParseKey).
	t.Run("bad escape", func(t *testing.T) {
		calls := e.st.callCount()
		for _, seg := range []string{"%ZZ", "a%", "%2"} {
			if res := e.do("PUT", "/kv/items/"+seg, `{"value": 1}`, bearer); res.status != http.StatusBadRequest {
				t.Errorf("%s: status = %d, want 400", seg, res.status)
			}
		}
		if e.st.callCount() != calls {
			t.Error("store called")
		}
	})
}

func TestPutBodyErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	tests := []struct {
		name, body, code string
	}{
		{"no body", "", "invalid_json"},
		{"whitespace", " \n\t ", "invalid_json"},
		{"not json", "hello", "invalid_json"},
		{"array", `[{"value": 1}]`, "invalid_json"},
		{"string", `"value"`, "invalid_json"},
		{"number", `42`, "invalid_json"},
		{"huge number", `1e400`, "invalid_json"},
		{"null", `null`, "invalid_json"},
		{"true", `true`, "invalid_json"},
		{"trailing object", `{"value": 1} {"value": 2}`, "invalid_json"},
		{"trailing garbage", `{"value": 1}x`, "invalid_json"},
		{"trailing comma", `{"value": 1,}`, "invalid_json"},
		{"missing colon", `{"value" 1}`, "invalid_json"},
		{"missing value token", `{"value": }`, "invalid_json"},
		{"truncated", `{"value": 1`, "invalid_json"},
		{"truncated value", `{"value": [1, 2`, "invalid_json"},
		{"truncated string", `{"value": "abc`, "invalid_json"},
		{"unknown field", `{"value": 1, "ttl": 5}`, "invalid_json"},
		{"unknown field only", `{"data": 1}`, "invalid_json"},
		{"wrong case field", `{"VALUE": 1}`, "invalid_json"},
		{"duplicate value", `{"value": 1, "value": 2}`, "invalid_json"},
		{"duplicate ttl", `{"value": 1, "ttlSeconds": 5, "ttlSeconds": 6}`, "invalid_json"},
		{"invalid UTF-8", "{\"value\": \"\xff\"}", "invalid_json"},
		{"leading zero", `{"value": 01}`, "invalid_json"},
		{"NaN", `{"value": NaN}`, "invalid_json"},
		{"single quotes", `{'value': 1}`, "invalid_json"},
		{"bad escape", `{"value": "\x"}`, "invalid_json"},
		{"control char in string", "{\"value\": \"a\nb\"}", "invalid_json"},
		{"empty object", `{}`, "missing_value"},
		{"ttl only", `{"ttlSeconds": 60}`, "missing_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := e.st.callCount()
			eb := wantError(t, e.do("PUT", "/kv/items/k", tt.body, bearer), http.StatusBadRequest, tt.code)
			if eb.Retryable {
				t.Error("validation error is retryable")
			}
			if e.st.callCount() != calls {
				t.Error("store called for an invalid body")
			}
		})
	}

	// The messages say what is wrong.
	for body, want := range map[string]string{
		`{"value": 1} 2`:                   "after the JSON object",
		`{"value": 1, "colour": 2}`:        `colour`,
		`[]`:                               "array",
		`{"value": 1, "value": 1}`:         "more than once",
		`{"value": 1, "ttlSeconds": "60"}`: "string",
		`{"value": 1, "ttlSeconds": -5}`:   "negative",
	} {
		res := e.do("PUT", "/kv/items/k", body, bearer)
		if !strings.Contains(string(res.body), want) {
			t.Errorf("%s: message lacks %q: %s", body, want, res.body)
		}
	}
}
