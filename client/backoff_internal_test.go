package client

import (
	"testing"
	"time"
)

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	c, err := New(Config{Endpoints: []string{"x:1"}, Retry: RetryPolicy{MaxAttempts: 10, BaseDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range []time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 80, 9: 80} {
		if want == 0 {
			continue
		}
		want *= time.Millisecond
		for range 50 {
			if d := c.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestTTLSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond: "0.001", 1500 * time.Millisecond: "1.5", time.Hour: "3600",
		1234567 * time.Microsecond: "1.235", 86400 * time.Second: "86400",
	} {
		if got, err := ttlSeconds(d); err != nil || got != want {
			t.Errorf("ttlSeconds(%v) = %q, %v; want %q", d, got, err, want)
		}
	}
}
