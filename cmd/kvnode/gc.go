package main

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's default pacing (GOGC=100) lets the heap grow to
// twice the live heap before it collects. A node's live heap is mostly its
// data set, which only grows, so at a million keys (~330 MB live) the default
// keeps ~330 MB of garbage on top: RSS twice the data. gcGovernor keeps the
// headroom at a fixed size instead, --gc-headroom bytes beyond the live heap,
// by lowering GOGC as the live heap grows:
//
//	GOGC = clamp(100 * headroom / live, --gc-min-percent, 100)
//
// so a small node collects exactly as Go's default does, and a large one
// collects every `headroom` bytes of allocation until the floor takes over:
// past live = headroom * 100 / floor, the headroom grows with the live heap
// (floor percent of it). The floor bounds the cost when the data set dwarfs
// the headroom: each cycle marks the whole live heap, so collecting every
// fixed 64 MiB at a million keys (GOGC ~15) spent a fifth to a third of the
// leader's CPU marking and multiplied write p99 (BENCHMARKS.md, "Write tail
// at one million keys"). Setting GOGC in the environment
// turns the governor off: an operator's explicit policy wins. GOMEMLIMIT
// needs nothing from us: the runtime applies it on top of either policy.

// defaultGCMinPercent is --gc-min-percent's default: the lowest GOGC the
// governor sets. Chosen by measurement (BENCHMARKS.md, "Session workload
// and the million-key write tail, second pass"): at a million keys (~290 MB
// live, where 64 MiB of headroom is GOGC ~22) 25 keeps every node within
// ~445 MB RSS; 50 halved the leader's collections and cost 50-80 MB more per
// node, past the ~450 MB budget. Beyond ~256 MB live the floor makes the
// headroom grow with the data set, so a collection's cost (marking the whole
// live heap) stays a bounded share of the allocation it pays for.
const defaultGCMinPercent = 25

// gcPercentFor returns the GOGC that leaves headroom bytes of heap growth
// above a live heap of live bytes, within [floor, 100].
func gcPercentFor(live, headroom uint64, floor int) int {
	floor = min(max(floor, 1), 100)
	if live == 0 || headroom >= live {
		return 100
	}
	return max(floor, int(headroom*100/live))
}

// gcGovernor re-tunes GOGC after every collection. It polls the runtime's
// cycle counter (cheap: two metric samples) rather than hooking the
// collector, so it lags a collection by at most one interval.
type gcGovernor struct {
	stop chan struct{}
	done chan struct{}
}

// startGCGovernor starts the governor unless headroom is 0 or GOGC is set in
// the environment (then it returns nil, whose stopGC is a no-op).
func startGCGovernor(headroom uint64, floor int, getenv func(string) string, logger *slog.Logger) *gcGovernor {
	if headroom == 0 {
		return nil
	}
	if v := getenv("GOGC"); v != "" {
		logger.Info("GOGC is set; --gc-headroom is not applied", "GOGC", v)
		return nil
	}
	g := &gcGovernor{stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(headroom, floor, logger)
	return g
}

func (g *gcGovernor) run(headroom uint64, floor int, logger *slog.Logger) {
	defer close(g.done)
	samples := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	var lastCycle uint64
	percent := 100
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindUint64 || samples[1].Value.Kind() != metrics.KindUint64 {
			logger.Warn("runtime metrics for the GC governor are unavailable; leaving GOGC alone")
			return
		}
		cycle := samples[0].Value.Uint64()
		if cycle == lastCycle {
			continue
		}
		lastCycle = cycle
		if p := gcPercentFor(samples[1].Value.Uint64(), headroom, floor); p != percent {
			debug.SetGCPercent(p)
			logger.Debug("GC percent changed", "gogc", p, "live_bytes", samples[1].Value.Uint64())
			percent = p
		}
	}
}

// stopGC stops the governor and waits for it; GOGC keeps its last value.
func (g *gcGovernor) stopGC() {
	if g == nil {
		return
	}
	close(g.stop)
	<-g.done
}
