package httpapi

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a", "a", true},
		{"a%2Fb", "a/b", true},
		{"%2F", "/", true},
		{"a+b", "a+b", true},
		{strings.Repeat("k", 512), strings.Repeat("k", 512), true},
		{"%F0%9F%98%80", "😀", true},
		{"", "", false},
		{strings.Repeat("k", 513), "", false},
		{"%ZZ", "", false},
		{"%", "", false},
		{"a%2", "", false},
		{"%FF", "", false},
		{"%ED%A0%80", "", false}, // UTF-16 surrogate encoded as UTF-8
		{"%00", "", false},
		{"%1F", "", false},
		{"%7F", "", false},
		{"%C2%85", "", false}, // NEL, C1
	}
	for _, tt := range tests {
		got, err := parseKey(tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("parseKey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.code != "invalid_key" || ae.status != 400 {
			t.Errorf("parseKey(%q) = %q, %v; want invalid_key", tt.in, got, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a%2Fb", "%ZZ", "%FF", "%00", "%C2%80", strings.Repeat("%C3%A9", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		key, err := parseKey(in)
		if err != nil {
			return
		}
		if len(key) == 0 || len(key) > maxKeyBytes || !utf8.ValidString(key) {
			t.Fatalf("parseKey(%q) accepted %q", in, key)
		}
		for _, r := range key {
			if unicode.IsControl(r) {
				t.Fatalf("parseKey(%q) accepted control character %U", in, r)
			}
		}
		// Re-encoding the key and parsing it again yields the same key.
		if again, err := parseKey(url.PathEscape(key)); err != nil || again != key {
			t.Fatalf("round trip of %q: %q, %v", key, again, err)
		}
	})
}
