package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTestClockOffsetFlag(t *testing.T) {
	o, err := parseFlags([]string{"--test-clock-offset", "-1500ms"}, func(string) string { return "" }, io.Discard)
	if err != nil || o.testClockOffset != -1500*time.Millisecond {
		t.Fatalf("parsed %v, %v", o.testClockOffset, err)
	}
	clock := testClock(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if d := time.Since(clock()); d < 1400*time.Millisecond || d > 1600*time.Millisecond {
		t.Fatalf("clock is %s behind, want about 1.5s", d)
	}
	if testClock(options{}, nil) != nil {
		t.Fatal("no offset must mean the default clock")
	}
	var help bytes.Buffer
	parseFlags([]string{"--help"}, func(string) string { return "" }, &help)
	if !strings.Contains(help.String(), "TEST ONLY") {
		t.Fatalf("--help does not mark the test-only flag:\n%s", help.String())
	}
}
