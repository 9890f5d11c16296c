package httpapi

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"null", 0, true},
		{"1", time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"1.0004", time.Second, true},
		{"1.0005", 1001 * time.Millisecond, true},
		{"0.0005", time.Millisecond, true},
		{"0.00050", time.Millisecond, true},
		{"0.000500000000000000000000000000000000000001", time.Millisecond, true},
		{"0.0004999999999999999999999999999", 0, false},
		{"0.001", time.Millisecond, true},
		{"86400", 24 * time.Hour, true},
		{"86400.0", 24 * time.Hour, true},
		{"000", 0, false}, // not JSON, but the decoder would have rejected it already
		{"100e-2", time.Second, true},
		{"0.1e1", time.Second, true},
		{"1e-3", time.Millisecond, true},
		{"5e-4", time.Millisecond, true},
		{"4e-4", 0, false},
		{"3.15576e8", 315576000 * time.Second, true},
		{"315576000", 315576000 * time.Second, true},
		{"315576000.0004", 315576000 * time.Second, true},
		{"315576000.0005", 0, false},
		{"315576001", 0, false},
		{"99999999999999999999999", 0, false},
		{"1e99999999999999999999", 0, false},
		{"1e-99999999999999999999", 0, false},
		{"0e99999999999", 0, false},
		{"0", 0, false},
		{"-0", 0, false},
		{"-0.0", 0, false},
		{"-1", 0, false},
		{"-1e-9", 0, false},
		{`"60"`, 0, false},
		{`"NaN"`, 0, false},
		{"true", 0, false},
		{"[]", 0, false},
		{"{}", 0, false},
		{"", 0, false},
		{"1.", 0, false},
		{".5", 0, false},
		{"1e", 0, false},
		{"1e+", 0, false},
		{"--1", 0, false},
	}
	for _, tt := range tests {
		got, err := parseTTL([]byte(tt.in))
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("parseTTL(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			continue
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.code != "invalid_ttl" {
			t.Errorf("parseTTL(%s) = %v, %v; want invalid_ttl", tt.in, got, err)
		}
	}
}

// FuzzParseTTL checks the digit arithmetic against exact rational arithmetic.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"1", "0.5", "1.0005", "0.0004999", "315576000", "3.15576e8", "1e-3", "-1", "0", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTTL([]byte(s))
		_, digits, exp, ok := splitJSONNumber(s)
		if !ok || s == "null" {
			if s != "null" && err == nil {
				t.Fatalf("parseTTL(%q) accepted a non-number", s)
			}
			return
		}
		if exp > 50 || exp < -50 || len(digits) > 200 {
			return // the oracle would be slow; the arithmetic is covered by smaller cases
		}
		r, okRat := new(big.Rat).SetString(s)
		if !okRat {
			t.Fatalf("big.Rat rejects %q", s)
		}
		// Round half up to milliseconds: floor(r*1000 + 1/2).
		ms := new(big.Rat).Mul(r, big.NewRat(1000, 1))
		ms.Add(ms, big.NewRat(1, 2))
		want := new(big.Int).Quo(ms.Num(), ms.Denom()) // truncates toward zero
		if ms.Sign() < 0 && new(big.Int).Mul(want, ms.Denom()).Cmp(ms.Num()) != 0 {
			want.Sub(want, big.NewInt(1))
		}
		valid := r.Sign() > 0 && want.Sign() > 0 && want.Cmp(big.NewInt(maxTTLMillis)) <= 0
		if valid != (err == nil) {
			t.Fatalf("parseTTL(%q) = %v, %v; exact ms %v", s, got, err, want)
		}
		if valid && got != time.Duration(want.Int64())*time.Millisecond {
			t.Fatalf("parseTTL(%q) = %v, want %v ms", s, got, want)
		}
		if err != nil && !strings.Contains(err.Error(), "invalid_ttl") {
			t.Fatalf("parseTTL(%q) error %v", s, err)
		}
	})
}
