package httpapi

import (
	"fmt"
	"net/url"
	"unicode/utf8"
)

// maxKeyBytes is the longest key accepted, in bytes after percent-decoding.
const maxKeyBytes = 512

// parseKey decodes the raw (still percent-encoded) {key} path segment and
// checks it is a usable key: 1 to maxKeyBytes bytes of valid UTF-8 without
// control characters (C0, DEL, C1). "%2F" decodes to a "/" that is part of the
// key; "+" is a literal plus.
func parseKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", errInvalidKey("The key contains an invalid percent-escape; encode reserved bytes as %XX with two hex digits.")
	}
	switch {
	case len(key) == 0:
		return "", errInvalidKey("The key is empty; use /kv/items/{key} with a key of 1 to 512 bytes.")
	case len(key) > maxKeyBytes:
		return "", errInvalidKey(fmt.Sprintf("The key is %d bytes after decoding; keys may be at most %d bytes.", len(key), maxKeyBytes))
	case !utf8.ValidString(key):
		return "", errInvalidKey("The key is not valid UTF-8 after percent-decoding; keys must be UTF-8 text.")
	}
	for i, r := range key {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return "", errInvalidKey(fmt.Sprintf("The key contains control character U+%04X at byte %d; keys may not contain control characters.", r, i))
		}
	}
	return key, nil
}
