package store

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/fsm"
)

// The rules every client write obeys. They live here, in one place, because
// two parties apply them: the HTTP layer, to answer a bad request with a
// precise error before anything else happens, and the store, on every write
// it is about to turn into a command, whether it came from this node's own
// API or from a peer's forwarding frame. A leader never takes a follower's
// word that a request was checked.
const (
	// MaxKeyBytes is the longest key (and prefix), in bytes.
	MaxKeyBytes = 512
	// MaxTTL is the longest TTL: 10 Julian years, 315,576,000 s.
	MaxTTL = 315_576_000 * time.Second
	// MaxIdempotencyKeyBytes is the longest idempotency key.
	MaxIdempotencyKeyBytes = 128
	// DefaultMaxValueBytes is the value limit when Config.MaxValueBytes is 0.
	DefaultMaxValueBytes int64 = 1 << 20
	// MaxMaxValueBytes bounds Config.MaxValueBytes (and --max-value-bytes).
	MaxMaxValueBytes int64 = 1 << 30
)

// validationErrors numbers the sentinels above for the forwarding protocol
// (rpc.go): never renumber; index 0 is unused.
var validationErrors = []error{nil, ErrInvalidKey, ErrInvalidPrefix, ErrInvalidValue, ErrValueTooLarge,
	ErrInvalidTTL, ErrInvalidIdempotencyKey, ErrInvalidWrite}

func invalid(err error, format string, args ...any) *InvalidError {
	return &InvalidError{Err: err, Reason: fmt.Sprintf(format, args...)}
}

// CheckKey reports whether key is usable: 1 to MaxKeyBytes bytes of valid
// UTF-8 without control characters (C0, DEL, C1).
func CheckKey(key string) error {
	if key == "" {
		return invalid(ErrInvalidKey, "the key is empty; keys are 1 to %d bytes", MaxKeyBytes)
	}
	return checkText(ErrInvalidKey, "key", key)
}

// CheckPrefix reports whether prefix is usable for a list or a prefix delete:
// the key rules, except that it may be empty. A prefix delete additionally
// needs a non-empty prefix (CheckWrite).
func CheckPrefix(prefix string) error {
	return checkText(ErrInvalidPrefix, "prefix", prefix)
}

func checkText(kind error, name, s string) error {
	if len(s) > MaxKeyBytes {
		return invalid(kind, "the %s is %d bytes; it may be at most %d bytes", name, len(s), MaxKeyBytes)
	}
	if !utf8.ValidString(s) {
		return invalid(kind, "the %s is not valid UTF-8", name)
	}
	for i, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return invalid(kind, "the %s contains control character U+%04X at byte %d; control characters are not allowed", name, r, i)
		}
	}
	return nil
}

// CheckValue reports whether value may be stored: one valid JSON value in
// compact form (no whitespace outside strings), at most maxBytes bytes.
// Reads return a value verbatim inside a JSON document, so anything else
// would make every later read of the key answer invalid JSON.
func CheckValue(value []byte, maxBytes int64) error {
	if int64(len(value)) > maxBytes {
		return invalid(ErrValueTooLarge, "the value is %d bytes as compact JSON; values may be at most %d bytes", len(value), maxBytes)
	}
	if !utf8.Valid(value) {
		return invalid(ErrInvalidValue, "the value is not valid UTF-8")
	}
	// The fast scanner decides almost every value; encoding/json decides
	// what it declines (an invalid value, or one nested very deeply).
	if end, spaced, ok := ScanJSONValue(value, 0); ok && end == len(value) && !spaced {
		return nil
	}
	if len(value) == 0 || !json.Valid(value) {
		return invalid(ErrInvalidValue, "the value is not a valid JSON value")
	}
	if i := insignificantSpace(value); i >= 0 {
		return invalid(ErrInvalidValue, "the value is not compact JSON (whitespace at byte %d)", i)
	}
	return nil
}

// insignificantSpace returns the offset of the first JSON whitespace byte
// outside a string in b (valid JSON), or -1.
func insignificantSpace(b []byte) int {
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i
		}
	}
	return -1
}

// CheckTTL reports whether ttl is usable: 0 (no expiry), or a whole number of
// milliseconds from 1 ms to MaxTTL.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < 0:
		return invalid(ErrInvalidTTL, "the TTL is negative")
	case ttl%time.Millisecond != 0:
		return invalid(ErrInvalidTTL, "the TTL is not a whole number of milliseconds")
	case ttl > MaxTTL:
		return invalid(ErrInvalidTTL, "the TTL is more than 10 years (%d s)", int64(MaxTTL/time.Second))
	}
	return nil
}

// CheckIdempotencyKey reports whether k is usable as an idempotency key: 1 to
// MaxIdempotencyKeyBytes bytes of visible ASCII, no spaces. The empty string
// (no key) is also accepted.
func CheckIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKeyBytes {
		return invalid(ErrInvalidIdempotencyKey, "the idempotency key is %d bytes; it must be 1 to %d bytes of visible ASCII", len(k), MaxIdempotencyKeyBytes)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return invalid(ErrInvalidIdempotencyKey, "the idempotency key has byte %#02x at %d; it must be visible ASCII without spaces", k[i], i)
		}
	}
	return nil
}

// check applies every rule to a write before it becomes a command: the
// rules of its fields and the combinations a client request can produce.
// maxValueBytes is the node's value limit.
func (r writeRequest) check(maxValueBytes int64) error {
	if r.op == fsm.OpDeletePrefix {
		if r.key == "" {
			return invalid(ErrInvalidPrefix, "a prefix delete needs a non-empty prefix; deleting every key is not supported")
		}
		if err := CheckPrefix(r.key); err != nil {
			return err
		}
	} else if err := CheckKey(r.key); err != nil {
		return err
	}
	// The key arrives scoped by its caller (idempotency.go): check the
	// scope's form, then the caller's key by the HTTP rules.
	scope, idemKey, ok := splitScopedIdempotencyKey(r.idemKey)
	if !ok || (scope != "" && idemKey == "") {
		return invalid(ErrInvalidIdempotencyKey, "the idempotency key's caller scope is malformed")
	}
	if err := CheckIdempotencyKey(idemKey); err != nil {
		return err
	}
	if r.ttlMs < 0 || r.ttlMs > int64(MaxTTL/time.Millisecond) {
		return invalid(ErrInvalidTTL, "the TTL of %d ms is outside 0 to %d ms", r.ttlMs, int64(MaxTTL/time.Millisecond))
	}
	switch r.cond {
	case fsm.CondNone:
	case fsm.CondIfMatch:
		if r.op == fsm.OpDeletePrefix {
			return invalid(ErrInvalidWrite, "a prefix delete takes no condition")
		}
	case fsm.CondIfAbsent:
		if r.op != fsm.OpSet {
			return invalid(ErrInvalidWrite, "create-only applies to a put only")
		}
	default:
		return invalid(ErrInvalidWrite, "unknown condition %d", r.cond)
	}
	if r.op != fsm.OpSet && len(r.value) != 0 {
		return invalid(ErrInvalidWrite, "a %s carries no value", r.op)
	}
	if r.keepTTL && (r.op != fsm.OpSet || r.ttlMs != 0) {
		return invalid(ErrInvalidTTL, "keepTtl keeps the current expiry of a put, so it takes no TTL")
	}
	if r.op != fsm.OpIncr && r.by != 0 {
		return invalid(ErrInvalidWrite, "only an incr carries an amount")
	}
	switch r.op {
	case fsm.OpSet:
		return CheckValue(r.value, maxValueBytes)
	case fsm.OpDelete, fsm.OpDeletePrefix:
		if r.ttlMs != 0 {
			return invalid(ErrInvalidWrite, "a %s takes no TTL", r.op)
		}
	case fsm.OpTouch, fsm.OpIncr:
	default:
		return invalid(ErrInvalidWrite, "op %s is not a client write", r.op)
	}
	return nil
}
