package main

import (
	"flag"
	"log/slog"
	"time"
)

// registerTestFlags adds flags that exist only for fault-injection tests
// (test/chaos). They are documented as such in --help and must never be set
// in production: a node whose clock is shifted stamps and judges TTLs wrongly.
func registerTestFlags(fs *flag.FlagSet, o *options) {
	fs.DurationVar(&o.testClockOffset, "test-clock-offset", 0,
		"TEST ONLY (test/chaos clock-skew scenario): shift this node's clock by this duration (e.g. 2s, -1.5s); never set in production")
}

// testClock returns the store clock for o: nil (time.Now) unless the test-only
// clock offset is set.
func testClock(o options, logger *slog.Logger) func() time.Time {
	if o.testClockOffset == 0 {
		return nil
	}
	off := o.testClockOffset
	logger.Warn("TEST ONLY: clock offset in effect", "offset", off.String())
	return func() time.Time { return time.Now().Add(off) }
}
