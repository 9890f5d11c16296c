package httpapi

import (
	"errors"
	"net/url"
	"strings"

	"github.com/quorumkv/quorumkv/store"
)

// maxKeyBytes is the longest key accepted, in bytes after percent-decoding.
const maxKeyBytes = store.MaxKeyBytes

// parseKey decodes the raw (still percent-encoded) {key} path segment and
// checks it with the store's key rules (store.CheckKey, which the leader
// applies again to every write): 1 to maxKeyBytes bytes of valid UTF-8
// without control characters (C0, DEL, C1). "%2F" decodes to a "/" that is
// part of the key; "+" is a literal plus.
func parseKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", errInvalidKey("The key contains an invalid percent-escape; encode reserved bytes as %XX with two hex digits.")
	}
	if key == "" {
		return "", errInvalidKey("The key is empty; use /kv/items/{key} with a key of 1 to 512 bytes.")
	}
	if err := store.CheckKey(key); err != nil {
		return "", errInvalidKey(sentence(err) + " Keys are 1 to 512 bytes of UTF-8 text without control characters.")
	}
	return key, nil
}

// sentence turns a store validation error's reason into a sentence for a
// client: capitalised, with a full stop.
func sentence(err error) string {
	var ie *store.InvalidError
	msg := err.Error()
	if errors.As(err, &ie) {
		msg = ie.Reason
	}
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}
