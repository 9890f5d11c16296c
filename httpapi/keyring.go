package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode"
)

// Scope is what an API key may do. Each scope includes the ones below it.
type Scope int

const (
	// ScopeRead: GET items, list, cluster status.
	ScopeRead Scope = iota + 1
	// ScopeWrite: read, plus every data change (PUT, PATCH, DELETE, incr).
	ScopeWrite
	// ScopeAdmin: everything, including membership, snapshot and restore.
	ScopeAdmin
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeWrite:
		return "write"
	case ScopeAdmin:
		return "admin"
	}
	return fmt.Sprintf("scope(%d)", int(s))
}

// ParseScope reads "read", "write" or "admin".
func ParseScope(s string) (Scope, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read":
		return ScopeRead, nil
	case "write":
		return ScopeWrite, nil
	case "admin":
		return ScopeAdmin, nil
	}
	return 0, fmt.Errorf("unknown scope %q (want read, write or admin)", s)
}

// APIKey is one configured key. Only its SHA-256 digest is kept.
type APIKey struct {
	Name   string
	Scope  Scope
	Digest [sha256.Size]byte
}

// NewAPIKey builds a key from its secret.
func NewAPIKey(name string, scope Scope, secret string) APIKey {
	return APIKey{Name: name, Scope: scope, Digest: sha256.Sum256([]byte(secret))}
}

// Keyring holds the keys a node accepts. Replace swaps the whole set
// atomically (SIGHUP reload); requests in flight keep the set they started with.
type Keyring struct {
	keys atomic.Pointer[[]APIKey]
}

// NewKeyring returns a keyring holding keys; see Replace for the rules.
func NewKeyring(keys []APIKey) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Replace(keys); err != nil {
		return nil, err
	}
	return k, nil
}

// Replace installs keys. It refuses an empty set, duplicate names, duplicate
// secrets and invalid scopes, leaving the previous set in place.
func (k *Keyring) Replace(keys []APIKey) error {
	if len(keys) == 0 {
		return errors.New("httpapi: no API keys configured")
	}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for _, key := range keys {
		switch {
		case key.Name == "" || strings.IndexFunc(key.Name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' }) >= 0:
			return fmt.Errorf("httpapi: API key name %q must be non-empty, without spaces, colons or control characters", key.Name)
		case key.Scope < ScopeRead || key.Scope > ScopeAdmin:
			return fmt.Errorf("httpapi: API key %q has an invalid scope", key.Name)
		case names[key.Name]:
			return fmt.Errorf("httpapi: API key name %q is used twice", key.Name)
		case digests[key.Digest]:
			return fmt.Errorf("httpapi: API key %q has the same secret as another key", key.Name)
		}
		names[key.Name], digests[key.Digest] = true, true
	}
	cp := append([]APIKey(nil), keys...)
	k.keys.Store(&cp)
	return nil
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(*k.keys.Load()) }

// lookup finds the key whose secret is token. It hashes the token once and
// compares the digest with every key in constant time without stopping
// early, so timing reveals neither which key matched nor any key's length.
func (k *Keyring) lookup(token string) (APIKey, bool) {
	return k.lookupDigest(sha256.Sum256([]byte(token)))
}

func (k *Keyring) lookupDigest(d [sha256.Size]byte) (APIKey, bool) {
	var found APIKey
	ok := 0
	for _, key := range *k.keys.Load() {
		if subtle.ConstantTimeCompare(d[:], key.Digest[:]) == 1 {
			found, ok = key, 1
		}
	}
	return found, ok == 1
}

// credentials are the keys an API accepts: the APIKey shortcut (admin) and
// the replaceable keyring, checked together in constant time.
type credentials struct {
	shortcut *APIKey
	ring     *Keyring
}

func (c credentials) lookup(token string) (APIKey, bool) {
	d := sha256.Sum256([]byte(token))
	var found APIKey
	ok := false
	if c.ring != nil {
		found, ok = c.ring.lookupDigest(d)
	}
	if c.shortcut != nil && subtle.ConstantTimeCompare(d[:], c.shortcut.Digest[:]) == 1 {
		found, ok = *c.shortcut, true
	}
	return found, ok
}

// ParseKeys reads a keys file. Two formats are accepted:
//
// JSON: {"keys": [{"name": "web", "scope": "write", "key": "SECRET"},
// {"name": "ops", "scope": "admin", "sha256": "<hex digest of the secret>"}]}
//
// Lines: "name:scope:SECRET" or "name:scope:sha256:<hex digest>", one per
// line; blank lines and lines starting with # are ignored.
//
// Storing digests keeps the secrets themselves off the node's disk.
func ParseKeys(data []byte) ([]APIKey, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parseKeysJSON(t)
	}
	var keys []APIKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		parts := strings.SplitN(text, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("keys file line %d: want name:scope:key", line)
		}
		key, err := makeKey(parts[0], parts[1], parts[2])
		if err != nil {
			return nil, fmt.Errorf("keys file line %d: %w", line, err)
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("keys file holds no keys")
	}
	return keys, nil
}

func parseKeysJSON(data []byte) ([]APIKey, error) {
	var doc struct {
		Keys []struct {
			Name   string `json:"name"`
			Scope  string `json:"scope"`
			Key    string `json:"key"`
			SHA256 string `json:"sha256"`
		} `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("keys file (JSON): %w", err)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("keys file (JSON) holds no keys")
	}
	keys := make([]APIKey, 0, len(doc.Keys))
	for i, k := range doc.Keys {
		if (k.Key == "") == (k.SHA256 == "") {
			return nil, fmt.Errorf("keys file (JSON) key %d (%q): set exactly one of \"key\" and \"sha256\"", i, k.Name)
		}
		secret := k.Key
		if k.SHA256 != "" {
			secret = "sha256:" + k.SHA256
		}
		key, err := makeKey(k.Name, k.Scope, secret)
		if err != nil {
			return nil, fmt.Errorf("keys file (JSON) key %d: %w", i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// makeKey builds a key from its file fields; secret "sha256:<hex>" is a digest.
func makeKey(name, scope, secret string) (APIKey, error) {
	name = strings.TrimSpace(name)
	sc, err := ParseScope(scope)
	if err != nil {
		return APIKey{}, fmt.Errorf("key %q: %w", name, err)
	}
	secret = strings.TrimSpace(secret)
	if hexDigest, ok := strings.CutPrefix(secret, "sha256:"); ok {
		raw, err := hex.DecodeString(hexDigest)
		if err != nil || len(raw) != sha256.Size {
			return APIKey{}, fmt.Errorf("key %q: sha256 digest must be 64 hex digits", name)
		}
		k := APIKey{Name: name, Scope: sc}
		copy(k.Digest[:], raw)
		return k, nil
	}
	if secret == "" || strings.IndexFunc(secret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return APIKey{}, fmt.Errorf("key %q: the secret must be non-empty without spaces or control characters", name)
	}
	if len(secret) < 16 {
		return APIKey{}, fmt.Errorf("key %q: the secret is %d characters; use at least 16 (e.g. openssl rand -hex 32)", name, len(secret))
	}
	return NewAPIKey(name, sc, secret), nil
}
