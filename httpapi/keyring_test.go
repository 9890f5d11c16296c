package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseKeysFormats(t *testing.T) {
	digest := sha256.Sum256([]byte("opsops-secret-0123456789"))
	lines := "# team keys\nweb:write:web-secret-0123456789\n\nreader:read:reader-secret-0123456\nops:admin:sha256:" + hex.EncodeToString(digest[:]) + "\n"
	json := `{"keys": [{"name": "web", "scope": "write", "key": "web-secret-0123456789"},
		{"name": "reader", "scope": "READ", "key": "reader-secret-0123456"},
		{"name": "ops", "scope": "admin", "sha256": "` + hex.EncodeToString(digest[:]) + `"}]}`
	for name, data := range map[string]string{"lines": lines, "json": json} {
		t.Run(name, func(t *testing.T) {
			keys, err := ParseKeys([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			ring, err := NewKeyring(keys)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				token string
				name  string
				scope Scope
			}{
				{"web-secret-0123456789", "web", ScopeWrite},
				{"reader-secret-0123456", "reader", ScopeRead},
				{"opsops-secret-0123456789", "ops", ScopeAdmin},
			} {
				k, ok := ring.lookup(tc.token)
				if !ok || k.Name != tc.name || k.Scope != tc.scope {
					t.Errorf("lookup(%q) = %+v %v", tc.token, k, ok)
				}
			}
			for _, bad := range []string{"", "web-secret", "sha256:" + hex.EncodeToString(digest[:]), "WEB-SECRET-0123456789"} {
				if k, ok := ring.lookup(bad); ok {
					t.Errorf("lookup(%q) matched %s", bad, k.Name)
				}
			}
		})
	}
}

func TestParseKeysRejects(t *testing.T) {
	for name, data := range map[string]string{
		"empty":           "",
		"only comments":   "# nothing\n",
		"two fields":      "web:write\n",
		"unknown scope":   "web:owner:web-secret-0123456789\n",
		"short secret":    "web:write:short\n",
		"bad digest":      "web:write:sha256:abcd\n",
		"space in secret": "web:write:has space 0123456789\n",
		"json unknown":    `{"keys": [{"name": "a", "scope": "read", "key": "0123456789abcdef", "extra": 1}]}`,
		"json both":       `{"keys": [{"name": "a", "scope": "read", "key": "0123456789abcdef", "sha256": "00"}]}`,
		"json none":       `{"keys": []}`,
		"json garbage":    `{"keys": [`,
	} {
		if _, err := ParseKeys([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKeyringReplaceRules(t *testing.T) {
	a := NewAPIKey("a", ScopeRead, "secret-a-0123456789")
	ring, err := NewKeyring([]APIKey{a})
	if err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string][]APIKey{
		"empty":          nil,
		"duplicate name": {a, NewAPIKey("a", ScopeWrite, "secret-b-0123456789")},
		"same secret":    {a, NewAPIKey("b", ScopeWrite, "secret-a-0123456789")},
		"bad name":       {NewAPIKey("has:colon", ScopeRead, "x")},
		"no scope":       {{Name: "z"}},
	} {
		if err := ring.Replace(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, ok := ring.lookup("secret-a-0123456789"); !ok || ring.Len() != 1 {
		t.Fatal("a refused Replace changed the keyring")
	}
	if err := ring.Replace([]APIKey{NewAPIKey("b", ScopeAdmin, "secret-b-0123456789")}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.lookup("secret-a-0123456789"); ok {
		t.Fatal("old key still accepted after Replace")
	}
	if !strings.Contains(ScopeAdmin.String(), "admin") {
		t.Fatal(ScopeAdmin.String())
	}
}
