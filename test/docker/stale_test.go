package docker

import (
	"testing"
	"time"
)

func TestIsStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, want := range map[string]bool{
		"qkvtest-1799999000-abcdef": true,  // 16m40s old
		"qkvtest-1799999999-abcdef": false, // a run in progress
		"qkvtest-1800000100-abcdef": false, // a clock ahead of ours
		"qkvtest-soon-abcdef":       false,
		"qkvtest-1799999000":        false,
		"quorumkv":                  false,
		"dev":                       false,
	} {
		if got := isStale(name, now); got != want {
			t.Errorf("isStale(%q) = %v, want %v", name, got, want)
		}
	}
}
