//go:build testclock

package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// behind returns how far clock is behind the system clock.
func behind(clock func() time.Time) time.Duration { return time.Since(clock()) }

func near(d, want time.Duration) bool {
	return d > want-100*time.Millisecond && d < want+100*time.Millisecond
}

func TestTestClockOffsetFlag(t *testing.T) {
	dir := t.TempDir()
	o, err := parseFlags([]string{"--test-clock-offset", "-1500ms", "--data-dir", dir}, func(string) string { return "" }, io.Discard)
	if err != nil || o.testClockOffset != -1500*time.Millisecond {
		t.Fatalf("parsed %v, %v", o.testClockOffset, err)
	}
	clock := testClock(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if d := behind(clock); !near(d, 1500*time.Millisecond) {
		t.Fatalf("clock is %s behind, want about 1.5s", d)
	}
	var help bytes.Buffer
	parseFlags([]string{"--help"}, func(string) string { return "" }, &help)
	if !strings.Contains(help.String(), "TEST ONLY") {
		t.Fatalf("--help does not mark the test-only flag:\n%s", help.String())
	}
}

// The offset file in the data dir moves the clock while the node runs
// (the chaos suite's "clock jumps under load"), and removing it restores the
// flag's offset; a file that does not parse changes nothing.
func TestTestClockOffsetFileChangesTheClockAtRunTime(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, testClockFile)
	var logs bytes.Buffer
	clock := testClock(options{dataDir: dir, testClockOffset: time.Second}, slog.New(slog.NewTextHandler(&logs, nil)))
	if d := behind(clock); !near(d, -time.Second) {
		t.Fatalf("clock is %s behind, want 1s ahead", d)
	}
	waitClock := func(want time.Duration) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !near(behind(clock), want) {
			if time.Now().After(deadline) {
				t.Fatalf("clock is %s behind, want %s", behind(clock), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("20m\n")
	waitClock(-20 * time.Minute)
	write("-20m")
	waitClock(20 * time.Minute)
	write("not a duration")
	time.Sleep(3 * testClockPoll)
	waitClock(20 * time.Minute)
	if !strings.Contains(logs.String(), "cannot parse") {
		t.Fatalf("an unparseable file was not logged:\n%s", logs.String())
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitClock(-time.Second)
	if !strings.Contains(logs.String(), "clock offset changed") {
		t.Fatalf("offset changes were not logged:\n%s", logs.String())
	}
}
