package httpapi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSetBodyCompacts(t *testing.T) {
	req, err := parseSetBody([]byte(" {\"ttlSeconds\" : null ,\n \"value\" : { \"a\" : [ 1 , 2 ] } } \n"), 100)
	if err != nil {
		t.Fatal(err)
	}
	if string(req.value) != `{"a":[1,2]}` || req.ttl != 0 {
		t.Errorf("got %s, %v", req.value, req.ttl)
	}
}

func TestClip(t *testing.T) {
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := clip(long)
	if !utf8.ValidString(got) || len(got) > 64+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("clip(long) = %q", got)
	}
}
