//go:build testclock

package main

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file exists only in the fault-injection build (go build -tags
// testclock): test/chaos, test/e2e and `KV_TEST_CLOCK_OFFSET=...
// scripts/cluster.sh` build it to skew a node's clock. The production binary
// has neither the flag nor the file below (testflags_default.go).

// testClockFile, in --data-dir, holds a clock offset (a Go duration such as
// "20m" or "-1.5s") that replaces --test-clock-offset while the node runs:
// tests rewrite it to make the clock jump. The node looks at it at most
// every testClockPoll; a missing file means the flag's value, an unreadable
// one is logged and ignored.
const (
	testClockFile = "test-clock-offset"
	testClockPoll = 50 * time.Millisecond
)

const testClockBuild = true

// registerTestFlags adds the flags of the fault-injection build.
func registerTestFlags(fs *flag.FlagSet, o *options) {
	fs.DurationVar(&o.testClockOffset, "test-clock-offset", 0,
		"TEST ONLY (testclock build): shift this node's clock by this duration (e.g. 2s, -20m); <data-dir>/"+testClockFile+" overrides it at run time")
}

// testClock returns the store clock of the fault-injection build: the
// system clock shifted by --test-clock-offset, or by the duration in
// <data-dir>/test-clock-offset whenever that file exists.
func testClock(o options, logger *slog.Logger) func() time.Time {
	c := &skewedClock{flag: o.testClockOffset, path: filepath.Join(o.dataDir, testClockFile), log: logger}
	c.refresh(time.Now())
	logger.Warn("TEST ONLY: fault-injection build with a skewable clock", "offset", time.Duration(c.offset.Load()).String(), "file", c.path)
	return c.now
}

// skewedClock is time.Now plus an offset re-read from a file. The reading
// returned carries no monotonic clock reading, like a real wall clock that
// was stepped: the store compares it with time.Now's monotonic clock to see
// steps at once.
type skewedClock struct {
	flag   time.Duration
	path   string
	log    *slog.Logger
	offset atomic.Int64 // nanoseconds
	next   atomic.Int64 // Unix ns of the next file check
	mu     sync.Mutex   // one file check at a time
	last   string       // the file's content at the last check
}

func (c *skewedClock) now() time.Time {
	t := time.Now()
	if t.UnixNano() >= c.next.Load() && c.mu.TryLock() {
		c.refresh(t)
		c.mu.Unlock()
	}
	return t.Add(time.Duration(c.offset.Load())).Round(0)
}

// refresh re-reads the file; callers hold c.mu (or are the constructor).
func (c *skewedClock) refresh(t time.Time) {
	c.next.Store(t.Add(testClockPoll).UnixNano())
	b, err := os.ReadFile(c.path)
	content := strings.TrimSpace(string(b))
	if err != nil {
		content = ""
	}
	if content == c.last && c.last != "" {
		return
	}
	off := c.flag
	if content != "" {
		d, perr := time.ParseDuration(content)
		if perr != nil {
			if content != c.last {
				c.log.Error("TEST ONLY: cannot parse the clock offset file; keeping the current offset", "file", c.path, "err", perr)
			}
			c.last = content
			return
		}
		off = d
	}
	c.last = content
	if old := time.Duration(c.offset.Swap(int64(off))); old != off {
		c.log.Warn("TEST ONLY: clock offset changed", "from", old.String(), "to", off.String())
	}
}
