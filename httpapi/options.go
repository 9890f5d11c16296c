package httpapi

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// Headers of the read-level and idempotency contract.
const (
	headerConsistency = "X-KV-Consistency"
	headerIndex       = "X-KV-Index"
	headerLastContact = "X-KV-Last-Contact-Ms"
	headerIdemKey     = "Idempotency-Key"
)

// etag formats a version as a strong entity tag.
func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// parseETag accepts a version as `"N"` (the form we send), `W/"N"` or a bare N:
// versions are exact, so weak and strong comparison agree, and clients that
// drop the quotes are common. Lists and "*" are refused.
func parseETag(v string) (uint64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || v[0] < '0' || v[0] > '9' || (v[0] == '0' && len(v) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// writeOptions reads If-Match, If-None-Match and Idempotency-Key for a write.
// createOnly says whether If-None-Match: * is allowed (PUT only). route names
// the operation and target for the fingerprint (e.g. "item\x00"+key); body is
// the exact request body.
func writeOptions(r *http.Request, createOnly bool, target string, body []byte) (store.WriteOptions, error) {
	var opts store.WriteOptions
	ifMatch := r.Header.Values("If-Match")
	ifNoneMatch := r.Header.Values("If-None-Match")
	switch {
	case len(ifMatch) > 1:
		return opts, errInvalidPrecondition("The request has more than one If-Match header; send one version, e.g. If-Match: \"42\".")
	case len(ifNoneMatch) > 1:
		return opts, errInvalidPrecondition("The request has more than one If-None-Match header; send If-None-Match: * once.")
	case len(ifMatch) == 1 && len(ifNoneMatch) == 1:
		return opts, errInvalidPrecondition("If-Match and If-None-Match cannot be combined; send one of them.")
	case len(ifMatch) == 1:
		v, ok := parseETag(ifMatch[0])
		if !ok {
			return opts, errInvalidPrecondition(`If-Match must be one version as the ETag sends it, e.g. If-Match: "42"; lists and * are not supported.`)
		}
		opts.IfMatch = &v
	case len(ifNoneMatch) == 1:
		if !createOnly {
			return opts, errInvalidPrecondition("If-None-Match is only supported on PUT, as If-None-Match: * (create only).")
		}
		if strings.TrimSpace(ifNoneMatch[0]) != "*" {
			return opts, errInvalidPrecondition("If-None-Match must be * (create only if the key does not exist); entity tags are not supported.")
		}
		opts.IfAbsent = true
	}

	idem := r.Header.Values(headerIdemKey)
	switch {
	case len(idem) > 1:
		return opts, errInvalidIdempotencyKey("The request has more than one Idempotency-Key header; send exactly one.")
	case len(idem) == 1:
		k := idem[0]
		if len(k) == 0 || store.CheckIdempotencyKey(k) != nil {
			return opts, errInvalidIdempotencyKey("The Idempotency-Key must be 1 to 128 bytes of visible ASCII (no spaces), e.g. a UUID.")
		}
		opts.IdempotencyKey = k
		// Scoped by the API key's name: another key's caller can neither
		// replay nor block this one's requests by guessing its keys.
		opts.IdempotencyScope = callerName(r)
		opts.Fingerprint = fingerprint(r.Method, target, ifMatch, ifNoneMatch, body)
	}
	return opts, nil
}

// fingerprint is the SHA-256 of everything that defines a write: method,
// target (operation, key or prefix), the precondition headers as sent and the
// exact body. Each part is length-prefixed so no two requests share an input.
func fingerprint(method, target string, ifMatch, ifNoneMatch []string, body []byte) [32]byte {
	h := sha256.New()
	part := func(h hash.Hash, b []byte) {
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	part(h, []byte(method))
	part(h, []byte(target))
	part(h, []byte(strings.Join(ifMatch, "\x00")))
	part(h, []byte(strings.Join(ifNoneMatch, "\x00")))
	part(h, body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// readOptions reads the read level (?consistency= or X-KV-Consistency) and
// ?minIndex=.
func readOptions(r *http.Request) (store.ReadOptions, error) {
	var opts store.ReadOptions
	q := r.URL.Query()
	level := q.Get("consistency")
	if h := r.Header.Get(headerConsistency); level == "" {
		level = h
	}
	switch strings.ToLower(level) {
	case "", "linearizable":
	case "stale":
		opts.Level = store.Stale
	default:
		return opts, errInvalidParameter(`consistency must be "linearizable" (the default) or "stale".`)
	}
	if v, ok := q["minIndex"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || n == 0 || len(v) > 1 {
			return opts, errInvalidParameter("minIndex must be one positive integer: a log index from a write's X-KV-Index header.")
		}
		opts.MinIndex = n
	}
	return opts, nil
}

// readHeaders describes the state a read was served from.
func readHeaders(h http.Header, info store.ReadInfo) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set(headerIndex, strconv.FormatUint(info.AppliedIndex, 10))
	if info.Follower {
		h.Set(headerLastContact, strconv.FormatInt(info.LastContact.Milliseconds(), 10))
	}
	return h
}

// Canonical header names, so writeHeaders can fill the map directly (Set
// would canonicalise on every write).
var (
	canonicalETag  = http.CanonicalHeaderKey("ETag")
	canonicalIndex = http.CanonicalHeaderKey(headerIndex)
)

// writeHeaders carries a write's version (when it has one) and log index.
func writeHeaders(version, index uint64) http.Header {
	h := make(http.Header, 2)
	if version != 0 {
		h[canonicalETag] = []string{etag(version)}
	}
	if index != 0 {
		h[canonicalIndex] = []string{strconv.FormatUint(index, 10)}
	}
	return h
}

// ttlRemainingMs is the time left before t on the node's clock, in whole
// milliseconds, never negative.
func ttlRemainingMs(t, now time.Time) int64 {
	return max(t.Sub(now).Milliseconds(), 0)
}
