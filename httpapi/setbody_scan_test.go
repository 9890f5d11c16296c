package httpapi

import (
	"net/http"
	"time"

	"bytes"
	"github.com/quorumkv/quorumkv/store"
	"strings"
	"testing"
)

// setBodySeeds are bodies the fast path must accept (first group) or may
// decline; every one is also a fuzz seed.
var setBodySeeds = []string{
	`{"value": 1}`,
	`{"value":{"sid":"s-00001","roles":["reader","writer"],"exp":1767225600},"ttlSeconds":3600}`,
	`{"value": {"a": [1, 2, {"b": "c"}]}, "ttlSeconds": 86400}`,
	` {"ttlSeconds": 0.5, "value": null} `,
	`{"value": "\u00e9\ud83d\ude00 \" \\ \/ \b\f\n\r\t", "keepTtl": false}`,
	`{"value": [], "keepTtl": true}`,
	`{"value": {}, "ttlSeconds": null}`,
	`{"value": -0.5e+10}`,
	`{"value": 9223372036854775809}`,
	"{\"value\":\t[ 1 ,\r\n2 ] }",
	`{"value": "Zoë"}`,
	// declined or refused:
	`{"value": 1, "ttlSeconds": "60"}`,
	`{"value": 1, "ttlSeconds": 1e400}`,
	`{"value": 1, "ttlSeconds": -1}`,
	`{"value": 1} {}`,
	`{"ttlSeconds": 1}`,
	`{}`,
	`[1]`,
	``,
	`{"value": 1, "value": 2}`,
	`{"value": 1,}`,
	`{"value": [1,]}`,
	`{"value": 01}`,
	`{"value": 1.}`,
	`{"value": .5}`,
	`{"value": -}`,
	`{"value": 1e}`,
	`{"value": tru}`,
	`{"value": nul}`,
	`{"value": "a` + "\x01" + `"}`,
	`{"value": "\x"}`,
	`{"value": "\u12G4"}`,
	`{"value": {"a" 1}}`,
	`{"value": {1: 2}}`,
	`{"val\u0075e": 1}`,
	`{"VALUE": 1}`,
	`{"value": 1, "keepTtl": true, "ttlSeconds": 5}`,
	`{"value": 1, "keepTtl": 1}`,
	"{\"value\": \"\xff\"}",
	`{"value": ` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	`{"value": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
	`{"value": "` + strings.Repeat("x", 5000) + `"}`,
}

// TestScanSetBodyAcceptsCommonBodies pins that the fast path really takes
// the bodies clients send (else it would be dead code behind the strict one).
func TestScanSetBodyAcceptsCommonBodies(t *testing.T) {
	for _, s := range setBodySeeds[:11] {
		if _, ok := scanSetBody([]byte(s), 4096); !ok {
			t.Errorf("fast path declined %q", s)
		}
	}
	for _, s := range setBodySeeds[11:] {
		if _, ok := scanSetBody([]byte(s), 4096); ok {
			if _, err := parseSetBodyStrict([]byte(s), 4096); err != nil {
				t.Errorf("fast path accepted %q, which the strict parser refuses: %v", s, err)
			}
		}
	}
}

// FuzzSetBodyFastMatchesStrict: whenever the fast path accepts a body, the
// strict parser accepts it too and returns the same value, TTL and keepTTL.
func FuzzSetBodyFastMatchesStrict(f *testing.F) {
	for _, s := range setBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := scanSetBody(body, 4096)
		strict, err := parseSetBodyStrict(body, 4096)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted %q; strict parser refuses it: %v", body, err)
		}
		if !bytes.Equal(fast.value, strict.value) || fast.ttl != strict.ttl || fast.keepTTL != strict.keepTTL {
			t.Fatalf("body %q: fast %q/%v/%v, strict %q/%v/%v", body,
				fast.value, fast.ttl, fast.keepTTL, strict.value, strict.ttl, strict.keepTTL)
		}
	})
}

// TestMetaReplyMatchesEncoder: the hand-built write answer is byte for byte
// what encoding/json makes of the same itemMeta.
func TestMetaReplyMatchesEncoder(t *testing.T) {
	exp := time.UnixMilli(1767225600123).UTC()
	for _, key := range []string{"k", "session-00042", `quo"te`, `back\slash`, "Zoë", "tab\there", "<&>", "\u2028"} {
		for _, res := range []store.SetResult{{Version: 7}, {Version: 1 << 60, ExpiresAt: exp, Index: 9}} {
			got, err := metaReply(http.StatusCreated, key, res)
			if err != nil {
				t.Fatal(err)
			}
			want, err := dataReply(http.StatusCreated, itemMeta{Key: key, Version: res.Version, ExpiresAt: expiry(res.ExpiresAt)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.body, want.body) {
				t.Errorf("key %q: metaReply %s, encoder %s", key, got.body, want.body)
			}
		}
	}
}
