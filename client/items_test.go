package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func TestPutGetRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)
	tests := []struct {
		name  string
		key   string
		value any
		want  string
	}{
		{"object", "session-usr_abc123", map[string]any{"userId": "usr_abc123"}, `{"userId":"usr_abc123"}`},
		{"raw big integer kept exactly", "big", json.RawMessage(`18446744073709551617`), `18446744073709551617`},
		{"raw long decimal", "dec", json.RawMessage(`0.1000000000000000000000001`), `0.1000000000000000000000001`},
		{"html characters not escaped", "html", "<a & b>", `"<a & b>"`},
		{"null is a value", "null", nil, `null`},
		{"slash inside the key", "session/usr/1", 1, `1`},
		{"unicode and spaces in the key", "clé ü +x", "v", `"v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := c.Put(ctx, tt.key, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if !w.Created || w.Version == 0 || w.Index == 0 || w.Key != tt.key || !w.ExpiresAt.IsZero() {
				t.Fatalf("put result %+v", w)
			}
			it, err := c.Get(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if string(it.Value) != tt.want || it.Key != tt.key || it.Version != w.Version || !it.ExpiresAt.IsZero() || it.TTLRemaining != 0 {
				t.Fatalf("get %+v (value %s), want value %s version %d", it, it.Value, tt.want, w.Version)
			}
		})
	}
}

func TestPutOptions(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)

	w1, err := c.Put(ctx, "k", "a", client.TTL(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(w1.ExpiresAt); until < 80*time.Second || until > 91*time.Second {
		t.Fatalf("expiresAt %v is not ~90s away", w1.ExpiresAt)
	}
	it, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if it.TTLRemaining < 80*time.Second || it.TTLRemaining > 90*time.Second || !it.ExpiresAt.Equal(w1.ExpiresAt) {
		t.Fatalf("get %+v", it)
	}

	w2, err := c.Put(ctx, "k", "b", client.KeepTTL(), client.IfMatch(w1.Version))
	if err != nil {
		t.Fatal(err)
	}
	if w2.Created || !w2.ExpiresAt.Equal(w1.ExpiresAt) || w2.Version <= w1.Version {
		t.Fatalf("keepTtl put %+v after %+v", w2, w1)
	}

	_, err = c.Put(ctx, "k", "c", client.IfMatch(w1.Version))
	if !errors.Is(err, client.ErrVersionMismatch) {
		t.Fatalf("stale If-Match: %v", err)
	}
	if v, ok := client.CurrentVersion(err); !ok || v != w2.Version {
		t.Fatalf("CurrentVersion = %d, %v; want %d", v, ok, w2.Version)
	}
	_, err = c.Put(ctx, "missing", "c", client.IfMatch(1))
	if v, ok := client.CurrentVersion(err); !errors.Is(err, client.ErrVersionMismatch) || !ok || v != 0 {
		t.Fatalf("If-Match on a missing key: %v (current %d, %v)", err, v, ok)
	}

	_, err = c.Put(ctx, "k", "d", client.IfNoneMatch())
	if v, _ := client.CurrentVersion(err); !errors.Is(err, client.ErrAlreadyExists) || v != w2.Version {
		t.Fatalf("create-only on a live key: %v", err)
	}
	if w, err := c.Put(ctx, "fresh", "d", client.IfNoneMatch()); err != nil || !w.Created {
		t.Fatalf("create-only on a missing key: %+v %v", w, err)
	}
	if it, _ := c.Get(ctx, "k"); string(it.Value) != `"b"` {
		t.Fatalf("failed conditions changed the value: %s", it.Value)
	}
}

func TestInvalidOptionsSendNothing(t *testing.T) {
	ctx := context.Background()
	fake, c := healthy(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"TTL with KeepTTL", func() error { _, err := c.Put(ctx, "k", 1, client.TTL(time.Second), client.KeepTTL()); return err }},
		{"IfMatch with IfNoneMatch", func() error { _, err := c.Put(ctx, "k", 1, client.IfMatch(3), client.IfNoneMatch()); return err }},
		{"TTL below 1ms", func() error { _, err := c.Put(ctx, "k", 1, client.TTL(time.Microsecond)); return err }},
		{"TTL over 10 years", func() error { _, err := c.Put(ctx, "k", 1, client.TTL(11*365*24*time.Hour)); return err }},
		{"KeepTTL on Delete", func() error { _, err := c.Delete(ctx, "k", client.KeepTTL()); return err }},
		{"IfNoneMatch on Incr", func() error { _, err := c.Incr(ctx, "k", 1, client.IfNoneMatch()); return err }},
		{"Stale on Put", func() error { _, err := c.Put(ctx, "k", 1, client.Stale()); return err }},
		{"invalid raw JSON", func() error { _, err := c.Put(ctx, "k", json.RawMessage(`{`)); return err }},
		{"unencodable value", func() error { _, err := c.Put(ctx, "k", make(chan int)); return err }},
		{"empty key", func() error { _, err := c.Get(ctx, ""); return err }},
		{"bad idempotency key", func() error { _, err := c.Put(ctx, "k", 1, client.IdempotencyKey("a b")); return err }},
		{"empty prefix", func() error { _, err := c.DeletePrefix(ctx, ""); return err }},
		{"negative Patch TTL", func() error { _, err := c.Patch(ctx, "k", -time.Second); return err }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, client.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption", err)
			}
		})
	}
	if n := fake.Applied(); n != 0 {
		t.Fatalf("%d writes reached the server", n)
	}
}

func TestDeletePatchIncr(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)
	w, _ := c.Put(ctx, "s", "x", client.TTL(time.Minute))

	p, err := c.Patch(ctx, "s", time.Hour)
	if err != nil || time.Until(p.ExpiresAt) < 59*time.Minute || p.Version <= w.Version {
		t.Fatalf("patch: %+v %v", p, err)
	}
	if p, err = c.Patch(ctx, "s", 0); err != nil || !p.ExpiresAt.IsZero() {
		t.Fatalf("patch to no expiry: %+v %v", p, err)
	}
	if _, err := c.Patch(ctx, "s", time.Hour, client.IfMatch(w.Version)); !errors.Is(err, client.ErrVersionMismatch) {
		t.Fatalf("patch with stale If-Match: %v", err)
	}
	if _, err := c.Patch(ctx, "nope", time.Hour); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("patch missing: %v", err)
	}

	if _, err := c.Delete(ctx, "s", client.IfMatch(w.Version)); !errors.Is(err, client.ErrVersionMismatch) {
		t.Fatalf("delete with stale If-Match: %v", err)
	}
	if deleted, err := c.Delete(ctx, "s", client.IfMatch(p.Version)); err != nil || !deleted {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	if deleted, err := c.Delete(ctx, "s"); err != nil || deleted {
		t.Fatalf("delete again: %v %v", deleted, err)
	}
	if _, err := c.Get(ctx, "s"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}

	r, err := c.Incr(ctx, "ctr", 5, client.TTL(time.Minute))
	if err != nil || r.Value != 5 || r.ExpiresAt.IsZero() {
		t.Fatalf("incr create: %+v %v", r, err)
	}
	if r, err = c.Incr(ctx, "ctr", -7); err != nil || r.Value != -2 {
		t.Fatalf("incr: %+v %v", r, err)
	}
	c.Put(ctx, "str", "x")
	if _, err := c.Incr(ctx, "str", 1); !errors.Is(err, client.ErrNotAnInteger) {
		t.Fatalf("incr on a string: %v", err)
	}
	c.Put(ctx, "max", json.RawMessage(`9223372036854775807`))
	if _, err := c.Incr(ctx, "max", 1); !errors.Is(err, client.ErrOverflow) {
		t.Fatalf("incr overflow: %v", err)
	}

	for _, k := range []string{"u/1/a", "u/1/b", "u/2/a"} {
		c.Put(ctx, k, 1)
	}
	if n, err := c.DeletePrefix(ctx, "u/1/"); err != nil || n != 2 {
		t.Fatalf("delete prefix: %d %v", n, err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)
	want := []string{"p/a", "p/b", "p/c", "p/d", "p/e"}
	for i, k := range want {
		c.Put(ctx, k, i)
	}
	c.Put(ctx, "q", 0)

	var got []string
	for it, err := range c.List(ctx, client.ListQuery{Prefix: "p/", PageSize: 2, Values: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if it.Value == nil || it.Version == 0 {
			t.Fatalf("item %+v lacks its value or version", it)
		}
		got = append(got, it.Key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}

	got = got[:0]
	for it, err := range c.List(ctx, client.ListQuery{Prefix: "p/", PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if it.Value != nil {
			t.Fatalf("values were not asked for: %+v", it)
		}
		if got = append(got, it.Key); len(got) == 3 {
			break
		}
	}
	if len(got) != 3 {
		t.Fatalf("stopping early: %v", got)
	}

	p, err := c.ListPage(ctx, client.ListQuery{PageSize: 1000}, "")
	if err != nil || !p.Complete || p.Cursor != "" || len(p.Items) != 6 {
		t.Fatalf("one page: %+v %v", p, err)
	}

	for _, err := range c.List(ctx, client.ListQuery{PageSize: 5000}) {
		if !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("bad page size: %v", err)
		}
	}
}
