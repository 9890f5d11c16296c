package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		floor          int
		want           int
	}{
		{0, 64 * mb, 10, 100},
		{32 * mb, 64 * mb, 10, 100},
		{64 * mb, 64 * mb, 10, 100},
		{128 * mb, 64 * mb, 10, 50},
		{320 * mb, 64 * mb, 10, 20},
		{4096 * mb, 64 * mb, 10, 10},
		// The floor takes over once the live heap passes headroom*100/floor:
		// at 400 MiB live, 64 MiB of headroom would be GOGC 16.
		{400 * mb, 64 * mb, 25, 25},
		{200 * mb, 64 * mb, 25, 32},
		{400 * mb, 64 * mb, 100, 100},
		{400 * mb, 64 * mb, 0, 16}, // out of range: clamped to 1
	} {
		if got := gcPercentFor(c.live, c.headroom, c.floor); got != c.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB, floor %d) = %d, want %d", c.live/mb, c.headroom/mb, c.floor, got, c.want)
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
	if g := startGCGovernor(0, defaultGCMinPercent, env(""), logger); g != nil {
		t.Error("headroom 0 started a governor")
	}
	if g := startGCGovernor(64<<20, defaultGCMinPercent, env("50"), logger); g != nil {
		t.Error("GOGC=50 in the environment started a governor")
	}
	g := startGCGovernor(64<<20, defaultGCMinPercent, env(""), logger)
	if g == nil {
		t.Fatal("no governor with headroom and no GOGC")
	}
	g.stopGC()
	var none *gcGovernor
	none.stopGC() // no-op
}

func TestGCMinPercentFlag(t *testing.T) {
	none := func(string) string { return "" }
	o, err := parseFlags(nil, none, io.Discard)
	if err != nil || o.gcMinPercent != defaultGCMinPercent {
		t.Fatalf("default = %d, %v; want %d", o.gcMinPercent, err, defaultGCMinPercent)
	}
	o, err = parseFlags(nil, func(k string) string { return map[string]string{"KV_GC_MIN_PERCENT": "50"}[k] }, io.Discard)
	if err != nil || o.gcMinPercent != 50 {
		t.Fatalf("from the environment = %d, %v", o.gcMinPercent, err)
	}
	for _, bad := range []string{"0", "-5", "101"} {
		if _, err := parseFlags([]string{"--gc-min-percent", bad}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "gc-min-percent") {
			t.Errorf("--gc-min-percent %s: %v, want an error naming the flag", bad, err)
		}
	}
}
