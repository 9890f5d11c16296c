//go:build !testclock

package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// The production build has no clock fault injection: the flag is unknown
// (so a node cannot be started with it by mistake) and the store gets the
// system clock.
func TestProductionBuildHasNoTestClock(t *testing.T) {
	if _, err := parseFlags([]string{"--test-clock-offset", "20m"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("--test-clock-offset accepted by the production build")
	}
	o, err := parseFlags(nil, func(name string) string {
		if name == "KV_TEST_CLOCK_OFFSET" {
			return "20m"
		}
		return ""
	}, io.Discard)
	if err != nil || testClock(o, nil) != nil {
		t.Fatalf("KV_TEST_CLOCK_OFFSET changed the production clock (err %v)", err)
	}
	var help bytes.Buffer
	parseFlags([]string{"--help"}, func(string) string { return "" }, &help)
	if strings.Contains(help.String(), "test-clock") || !strings.Contains(help.String(), "max-clock-offset") {
		t.Fatalf("--help:\n%s", help.String())
	}
	if testClockBuild {
		t.Fatal("testClockBuild in the default build")
	}
}
