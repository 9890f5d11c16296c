package httpapi

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// maxTTLMillis is the longest TTL accepted (store.MaxTTL: 10 Julian years,
// 315,576,000 s).
const maxTTLMillis = int64(store.MaxTTL / time.Millisecond)

// parseTTL converts the raw JSON of "ttlSeconds" into a duration in whole
// milliseconds. null means no expiry and yields 0. Otherwise raw must be a
// JSON number; it is rounded to the nearest millisecond (halves up) and must
// land in [1 ms, 10 years].
//
// The number is converted exactly from its decimal digits, never through
// float64, so 1.0005 is 1001 ms and 0.0004999 is 0 ms (rejected). Work is
// linear in the length of raw whatever its exponent.
func parseTTL(raw []byte) (time.Duration, error) {
	s := string(raw)
	if s == "null" {
		return 0, nil
	}
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, errInvalidTTL(ttlMessage("is " + jsonKind(raw)))
	}
	neg, digits, exp, ok := splitJSONNumber(s)
	if !ok {
		return 0, errInvalidTTL(ttlMessage("is not a valid JSON number"))
	}
	// Strip leading zeros so len(digits) is the count of significant digits.
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, errInvalidTTL(ttlMessage("is 0"))
	}
	if neg {
		return 0, errInvalidTTL(ttlMessage("is negative"))
	}
	// The value in milliseconds is digits × 10^scale.
	scale := exp + 3
	if int64(len(digits))+scale > 13 { // ≥ 10^12 ms, far beyond the maximum
		return 0, errInvalidTTL(ttlMessage("is more than 10 years"))
	}
	var ms int64
	if scale >= 0 {
		for _, c := range digits {
			ms = ms*10 + int64(c-'0')
		}
		for ; scale > 0; scale-- {
			ms *= 10
		}
	} else {
		// Keep the digits left of the millisecond point; round on the first dropped one.
		keep := int64(len(digits)) + scale // may be negative: the value is < 0.1 ms
		var roundDigit byte
		if keep >= 0 {
			for _, c := range digits[:keep] {
				ms = ms*10 + int64(c-'0')
			}
			if keep < int64(len(digits)) {
				roundDigit = digits[keep]
			}
		}
		if roundDigit >= '5' {
			ms++
		}
	}
	if ms == 0 {
		return 0, errInvalidTTL(ttlMessage("rounds to 0 milliseconds"))
	}
	ttl := time.Duration(ms) * time.Millisecond
	if err := store.CheckTTL(ttl); err != nil {
		return 0, errInvalidTTL(ttlMessage("is more than 10 years"))
	}
	return ttl, nil
}

func ttlMessage(problem string) string {
	return fmt.Sprintf("ttlSeconds %s; send a number of seconds from 0.001 to 315576000 (10 years), or omit it or send null for no expiry.", problem)
}

// splitJSONNumber parses s against the JSON number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and returns its sign, its
// integer and fraction digits concatenated, and the decimal exponent that
// applies to them. Exponents are clamped to ±1e9; with digit strings bounded
// by the request size that never changes a TTL decision.
func splitJSONNumber(s string) (neg bool, digits string, exp int64, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	start := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false, "", 0, false
	}
	intPart := s[start:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return false, "", 0, false
		}
		frac = s[fs:i]
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expNeg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			if exp < 1e9 {
				exp = exp*10 + int64(s[i]-'0')
			}
			i++
		}
		if i == es {
			return false, "", 0, false
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(s) {
		return false, "", 0, false
	}
	return neg, intPart + frac, exp - int64(len(frac)), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// jsonKind names the type of the JSON value whose first byte starts raw.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "not a number"
}
