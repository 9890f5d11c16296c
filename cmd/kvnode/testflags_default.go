//go:build !testclock

package main

import (
	"flag"
	"log/slog"
	"time"
)

// The production build has no fault injection: no --test-clock-offset flag
// (kvnode refuses it as unknown), and the store uses the system clock.
// test/chaos and scripts/cluster.sh build kvnode with -tags testclock to get
// them (testflags.go).

const testClockBuild = false

func registerTestFlags(*flag.FlagSet, *options) {}

func testClock(options, *slog.Logger) func() time.Time { return nil }
