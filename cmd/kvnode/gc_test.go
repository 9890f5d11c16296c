package main

import (
	"io"
	"log/slog"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 64 * mb, 100},
		{32 * mb, 64 * mb, 100},
		{64 * mb, 64 * mb, 100},
		{128 * mb, 64 * mb, 50},
		{320 * mb, 64 * mb, 20},
		{4096 * mb, 64 * mb, gcMinPercent},
	} {
		if got := gcPercentFor(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d, want %d", c.live/mb, c.headroom/mb, got, c.want)
		}
	}
}

func TestGCGovernorOffWhenDisabledOrGOGCSet(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	if g := startGCGovernor(0, env(""), logger); g != nil {
		t.Error("headroom 0 started a governor")
	}
	if g := startGCGovernor(64<<20, env("50"), logger); g != nil {
		t.Error("GOGC=50 in the environment started a governor")
	}
	g := startGCGovernor(64<<20, env(""), logger)
	if g == nil {
		t.Fatal("no governor with headroom and no GOGC")
	}
	g.stopGC()
	var none *gcGovernor
	none.stopGC() // no-op
}
