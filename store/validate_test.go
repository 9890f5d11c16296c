package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want error
	}{
		{`1`, nil},
		{`null`, nil},
		{`"a b\" c"`, nil},              // spaces and an escaped quote inside a string
		{`{"k":"v \\","x":[1,2]}`, nil}, // an escaped backslash ends right before the quote
		{`"` + strings.Repeat("x", 254) + `"`, nil},
		{`"` + strings.Repeat("x", 255) + `"`, ErrValueTooLarge},
		{``, ErrInvalidValue},
		{`notjson`, ErrInvalidValue},
		{`1 2`, ErrInvalidValue},
		{` 1`, ErrInvalidValue},
		{`{"a": 1}`, ErrInvalidValue},
		{"[1,\n2]", ErrInvalidValue},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), nil}, // deeper than the fast scanner goes
		{strings.Repeat("[", 100) + " " + strings.Repeat("]", 100), ErrInvalidValue},
		{"\"\xff\"", ErrInvalidValue},
		{`{"k":"v \\" ,"x":1}`, ErrInvalidValue},
	} {
		err := CheckValue([]byte(tc.v), 256)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckValue(%q) = %v, want %v", tc.v, err, tc.want)
		}
	}
}

func TestCheckTTLAndKeys(t *testing.T) {
	for ttl, ok := range map[time.Duration]bool{
		0: true, time.Millisecond: true, MaxTTL: true,
		-time.Millisecond: false, MaxTTL + time.Millisecond: false, 1500 * time.Microsecond: false,
	} {
		if err := CheckTTL(ttl); (err == nil) != ok {
			t.Errorf("CheckTTL(%v) = %v", ttl, err)
		}
	}
	for key, ok := range map[string]bool{
		"k": true, "a/b c+é": true, strings.Repeat("k", MaxKeyBytes): true,
		"": false, strings.Repeat("k", MaxKeyBytes+1): false, "a\tb": false, "a\x7fb": false, "\xc3": false,
	} {
		if err := CheckKey(key); (err == nil) != ok {
			t.Errorf("CheckKey(%q) = %v", key, err)
		}
	}
	if CheckPrefix("") != nil || CheckPrefix("a\nb") == nil {
		t.Error("CheckPrefix: an empty prefix is fine, a control character is not")
	}
	for k, ok := range map[string]bool{"": true, "abc-123_~": true, strings.Repeat("i", 128): true, "a b": false, "é": false, strings.Repeat("i", 129): false} {
		if err := CheckIdempotencyKey(k); (err == nil) != ok {
			t.Errorf("CheckIdempotencyKey(%q) = %v", k, err)
		}
	}
}

// BenchmarkCheckValue: what the leader's re-check of a value costs.
func BenchmarkCheckValue(b *testing.B) {
	for _, size := range []int{256, 4 << 10, 1 << 20} {
		v := []byte(`{"user":"usr_abc123","cart":[` + strings.Repeat(`{"sku":"item_1","qty":2},`, size/26) + `{}]}`)
		b.Run(fmt.Sprintf("%dB", len(v)), func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				if err := CheckValue(v, 2<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
