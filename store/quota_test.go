package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestKeysQuota: past MaxKeys, writes that create a key are refused through
// the leader and through a forwarding follower, nothing is written, and
// everything that does not add a key still works: overwrites, PATCH,
// increments of existing counters, deletes, prefix deletes, and an
// idempotent retry of a write made before the quota was reached.
func TestKeysQuota(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxKeys = 4 })
	l := c.leader()
	f := c.followers(l)[0]
	retryKey := WriteOptions{IdempotencyKey: "retry-1", Fingerprint: [32]byte{1}}
	first, err := f.store.Put(ctxTimeout(t, 10*time.Second), "k0", []byte(`"v"`), 0, false, retryKey)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, l, "k1", `1`, 0)
	mustSet(t, l, "k2", `"x"`, 0)
	mustSet(t, l, "p/a", `"y"`, 0)

	for _, nd := range []*testNode{l, f} {
		_, err := nd.store.Set(ctxTimeout(t, 10*time.Second), "new", []byte(`1`), 0)
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "--max-keys") {
			t.Fatalf("create on %s past the keys quota: %v", nd.id, err)
		}
		if _, err := nd.store.Incr(ctxTimeout(t, 10*time.Second), "counter", 1, 0, WriteOptions{}); !errors.Is(err, ErrQuotaExceeded) {
			t.Fatalf("incr creating a key on %s: %v", nd.id, err)
		}
	}
	if _, err := l.store.Get(ctxTimeout(t, 10*time.Second), "new", Linearizable); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused write left a key: %v", err)
	}
	if got := counterValue(t, l.store.metrics.quotaExceeded.WithLabelValues("keys")); got != 4 {
		t.Fatalf("quota_exceeded_total{limit=keys} = %v on the leader, want 4", got)
	}
	waitFor(t, 10*time.Second, "the follower to report its quota full", func() bool {
		q := f.store.Quota()
		return q.Full() && q.Keys == 4
	})

	// What adds no key still works, on either node.
	mustSet(t, f, "k2", `"a larger value than before"`, 0)
	if _, err := f.store.Touch(ctxTimeout(t, 10*time.Second), "k2", time.Hour, WriteOptions{}); err != nil {
		t.Fatalf("PATCH at the keys quota: %v", err)
	}
	if _, err := f.store.Incr(ctxTimeout(t, 10*time.Second), "k1", 5, 0, WriteOptions{}); err != nil {
		t.Fatalf("incr of an existing counter at the keys quota: %v", err)
	}
	again, err := l.store.Put(ctxTimeout(t, 10*time.Second), "k0", []byte(`"v"`), 0, false, retryKey)
	if err != nil || again.Version != first.Version {
		t.Fatalf("idempotent retry at the quota: %+v, %v; want the original version %d", again, err, first.Version)
	}
	if _, err := f.store.DeletePrefix(ctxTimeout(t, 10*time.Second), "p/", WriteOptions{}); err != nil {
		t.Fatalf("prefix delete at the quota: %v", err)
	}
	// A key was freed: one create fits again.
	if _, err := f.store.Set(ctxTimeout(t, 10*time.Second), "new", []byte(`1`), 0); err != nil {
		t.Fatalf("create after a delete freed a key: %v", err)
	}
	if _, err := f.store.Set(ctxTimeout(t, 10*time.Second), "newer", []byte(`1`), 0); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("create past the quota again: %v", err)
	}
}

// TestDataQuota: a write that would take keys plus values past MaxDataBytes
// is refused; writes that shrink or keep the size pass, and so does growth
// that fits.
func TestDataQuota(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxDataBytes = 1000 })
	l := c.leader()
	f := c.followers(l)[0]
	big := `"` + strings.Repeat("a", 800) + `"`
	mustSet(t, l, "big", big, 0) // 805 bytes
	if _, err := f.store.Set(ctxTimeout(t, 10*time.Second), "more", []byte(`"`+strings.Repeat("b", 200)+`"`), 0); !errors.Is(err, ErrQuotaExceeded) ||
		!strings.Contains(err.Error(), "--max-data-bytes") {
		t.Fatalf("write past the data quota: %v", err)
	}
	if _, err := f.store.Set(ctxTimeout(t, 10*time.Second), "big", []byte(`"`+strings.Repeat("a", 1000)+`"`), 0); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("overwrite growing past the data quota: %v", err)
	}
	if got := counterValue(t, l.store.metrics.quotaExceeded.WithLabelValues("data_bytes")); got != 2 {
		t.Fatalf("quota_exceeded_total{limit=data_bytes} = %v, want 2", got)
	}
	mustSet(t, f, "small", `"fits"`, 0)                       // 811 bytes
	mustSet(t, f, "big", `"`+strings.Repeat("c", 100)+`"`, 0) // shrinks to 105 + 11
	mustSet(t, f, "more", `"`+strings.Repeat("b", 200)+`"`, 0)
	if q := l.store.Quota(); q.Full() || q.DataBytes != int64(3+102+5+6+4+202) {
		t.Fatalf("quota status %+v on the leader, which applied every acknowledged write", q)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
