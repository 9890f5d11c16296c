package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// phaseStats is throughput and latency of successful ops in one phase.
type phaseStats struct {
	Seconds      float64 `json:"seconds"`
	OK           int     `json:"ok"`
	OpsPerSec    float64 `json:"opsPerSec"`
	WritesPerSec float64 `json:"writesPerSec"`
	P50ms        float64 `json:"p50ms"`
	P99ms        float64 `json:"p99ms"`
}

// condCounts counts the conditional puts on register keys by outcome.
type condCounts struct {
	IfMatchOK     int `json:"ifMatchOk"`
	IfMatch412    int `json:"ifMatch412"`
	IfAbsentOK    int `json:"ifNoneMatchOk"`
	IfAbsent412   int `json:"ifNoneMatch412"`
	Unknown       int `json:"unknown"`
	OtherFailures int `json:"otherFailures"`
}

func countConditional(ops []Op) condCounts {
	var c condCounts
	for _, o := range ops {
		switch {
		case !o.conditional():
		case o.Outcome == outOK && o.IfMatch != 0:
			c.IfMatchOK++
		case o.Outcome == outOK:
			c.IfAbsentOK++
		case o.Precond && o.IfMatch != 0:
			c.IfMatch412++
		case o.Precond:
			c.IfAbsent412++
		case o.Outcome == outUnknown:
			c.Unknown++
		default:
			c.OtherFailures++
		}
	}
	return c
}

type opCounts struct {
	Invoked int `json:"invoked"`
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
}

// scenarioReport is one scenario's results, written as text and JSON.
type scenarioReport struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Nodes       int     `json:"nodes"`
	Build       string  `json:"build"`             // plain, race, brokenreads
	RaftLog     string  `json:"raftLog,omitempty"` // the nodes' --raft-log; empty: kvnode's default
	Seed        int64   `json:"seed"`
	Seconds     float64 `json:"seconds"` // wall time of the whole scenario

	Ops          opCounts              `json:"ops"`
	Conditional  condCounts            `json:"conditionalPuts"`
	OpsChecked   int                   `json:"opsChecked"` // register ops given to porcupine + ack reads + TTL reads + listed keys
	Linear       linResult             `json:"linearizability"`
	FaultsByType map[string]int        `json:"faultsByType"`
	Faults       []*fault              `json:"faults"`
	Leaders      []leaderTerm          `json:"leaders"`
	LeaderChgs   int                   `json:"leaderChanges"`
	LongestWrite float64               `json:"longestWriteUnavailabilitySec"`
	Phases       map[string]phaseStats `json:"phases"` // before, during, after
	AckChecked   int                   `json:"ackReadsChecked"`
	AckProblems  []string              `json:"ackProblems,omitempty"`
	KeysListed   int                   `json:"keysListed"` // live keys listed on all nodes after healing
	ListProblems []string              `json:"listProblems,omitempty"`
	TTL          ttlReport             `json:"ttl"`
	Watch        watchReport           `json:"watch"`
	Cache        cacheReport           `json:"nearCache"`
	// ClockProbe counts probe checks (a node reading a long-TTL key and
	// retrying a keyed incr) across clock faults; ClockDetectMs, per clock
	// jump of a leader, the time until another node led.
	ClockProbe    int            `json:"clockProbeChecks,omitempty"`
	ClockProblems []string       `json:"clockProblems,omitempty"`
	ClockDetectMs []int64        `json:"clockJumpToNewLeaderMs,omitempty"`
	ConvergedSec  float64        `json:"convergedInSec"`
	Converge      []string       `json:"convergeState,omitempty"`
	LogProblems   []string       `json:"logProblems,omitempty"`
	Guard         []string       `json:"guardProblems,omitempty"`
	Anomalies     anomalies      `json:"anomalies"`
	Transfers     transferReport `json:"transfers"`
	Artifacts     string         `json:"artifacts,omitempty"`
	// SelfTest: a deliberately broken build that the checker must reject.
	SelfTest bool `json:"selfTest,omitempty"`
}

func countOps(ops []Op) opCounts {
	var c opCounts
	for _, o := range ops {
		c.Invoked++
		switch o.Outcome {
		case outOK:
			c.OK++
		case outFail:
			c.Failed++
		default:
			c.Unknown++
		}
	}
	return c
}

// phase computes stats of ops that returned in [from, to).
func phase(ops []Op, from, to int64) phaseStats {
	p := phaseStats{Seconds: time.Duration(to - from).Seconds()}
	var lat []time.Duration
	writes := 0
	for _, o := range ops {
		if o.Outcome != outOK || o.Return < from || o.Return >= to {
			continue
		}
		p.OK++
		if o.isWrite() {
			writes++
		}
		lat = append(lat, o.latency())
	}
	if p.Seconds > 0 {
		p.OpsPerSec = float64(p.OK) / p.Seconds
		p.WritesPerSec = float64(writes) / p.Seconds
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	p.P50ms, p.P99ms = pct(0.50), pct(0.99)
	return p
}

// longestWriteGap is the longest time in [from, to] without a successful write returning.
func longestWriteGap(ops []Op, from, to int64) time.Duration {
	var rets []int64
	for _, o := range ops {
		if o.isWrite() && o.Outcome == outOK && o.Return >= from && o.Return <= to {
			rets = append(rets, o.Return)
		}
	}
	sort.Slice(rets, func(i, j int) bool { return rets[i] < rets[j] })
	prev, gap := from, int64(0)
	for _, r := range append(rets, to) {
		gap = max(gap, r-prev)
		prev = r
	}
	return time.Duration(gap)
}

// text renders the report for humans.
func (r *scenarioReport) text() string {
	var b strings.Builder
	status := "PASS"
	if r.Anomalies.total() > 0 {
		status = "FAIL"
	}
	if r.SelfTest {
		status = "BROKEN BUILD NOT CAUGHT"
		if r.Linear.Result == "Illegal" {
			status = "BROKEN BUILD CAUGHT"
		}
	}
	raftLog := r.RaftLog
	if raftLog == "" {
		raftLog = "default"
	}
	fmt.Fprintf(&b, "== %s [%s] %s: %d nodes, %s build, %s raft log, seed %d, %.1fs\n", r.Name, status, r.Description, r.Nodes, r.Build, raftLog, r.Seed, r.Seconds)
	fmt.Fprintf(&b, "   ops: invoked %d, ok %d, failed %d, unknown %d; checked %d (porcupine %d on %d keys in %.1fs: %s; ack reads %d; ttl reads %d; keys listed %d)\n",
		r.Ops.Invoked, r.Ops.OK, r.Ops.Failed, r.Ops.Unknown, r.OpsChecked, r.Linear.Ops, r.Linear.Keys, r.Linear.Seconds, r.Linear.Result, r.AckChecked, r.TTL.Reads, r.KeysListed)
	cp := r.Conditional
	fmt.Fprintf(&b, "   conditional puts: if-match ok %d / 412 %d, if-none-match ok %d / 412 %d, unknown %d, other failures %d\n",
		cp.IfMatchOK, cp.IfMatch412, cp.IfAbsentOK, cp.IfAbsent412, cp.Unknown, cp.OtherFailures)
	var kinds []string
	for k, n := range r.FaultsByType {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "   faults: %s; leader changes %d; longest write unavailability %.2fs; converged in %.2fs\n",
		strings.Join(kinds, ", "), r.LeaderChgs, r.LongestWrite, r.ConvergedSec)
	for _, name := range []string{"before", "during", "after"} {
		p := r.Phases[name]
		fmt.Fprintf(&b, "   %-6s %5.1fs: %6.1f ops/s (%5.1f writes/s), p50 %6.1fms, p99 %7.1fms\n", name, p.Seconds, p.OpsPerSec, p.WritesPerSec, p.P50ms, p.P99ms)
	}
	fmt.Fprintf(&b, "   ttl: %d keys (%d across a leader change), %d reads, clock tolerance %v ms\n", r.TTL.Keys, r.TTL.AcrossLeaderChg, r.TTL.Reads, r.TTL.ClockToleranceMs)
	fmt.Fprintf(&b, "   watch: %d watchers, %d events checked, %d resets, %d compacted\n", r.Watch.Watchers, r.Watch.Events, r.Watch.Resets, r.Watch.Compacted)
	fmt.Fprintf(&b, "   near cache: %d caches, %d reads checked (%d hits, %d linearizable fallbacks, %d failed), staleness bound %.1fs\n", r.Cache.Caches, r.Cache.Reads, r.Cache.Hits, r.Cache.Fallbacks, r.Cache.Failed, r.Cache.MaxStaleness)
	if r.ClockProbe > 0 || len(r.ClockDetectMs) > 0 {
		fmt.Fprintf(&b, "   clock: %d probe checks; leader clock jump to new leader %v ms\n", r.ClockProbe, r.ClockDetectMs)
	}
	b.WriteString(r.Transfers.text())
	a := r.Anomalies
	fmt.Fprintf(&b, "   anomalies: non-linearizable %d, lost acks %d, invented acks %d, diverged %d, ttl resurrections %d, ttl early expiries %d, ttl bad stamps %d, log problems %d, unclean exits %d, guard failures %d, checker incomplete %d, unexpected keys %d, clock probe %d, transfers %d, watch %d, near cache %d\n",
		a.NonLinearizable, a.LostAcks, a.InventedAcks, a.Diverged, a.TTLResurrections, a.TTLEarlyExpiries, a.TTLBadStamps, a.LogProblems, a.UncleanExits, a.GuardFailures, a.CheckerIncomplete, a.UnexpectedKeys, a.ClockProbe, a.Transfers, a.Watch, a.Cache)
	for _, list := range [][]string{r.Guard, r.AckProblems, r.ListProblems, r.TTL.Resurrections, r.TTL.EarlyExpiries, r.TTL.BadStamps, r.ClockProblems, r.LogProblems, r.Watch.Problems, r.Cache.Problems} {
		for i, s := range list {
			if i == 10 {
				fmt.Fprintf(&b, "   ... %d more\n", len(list)-10)
				break
			}
			fmt.Fprintf(&b, "   ! %s\n", s)
		}
	}
	if r.Linear.Error != "" {
		fmt.Fprintf(&b, "   ! checker: %s\n", r.Linear.Error)
	}
	if r.Artifacts != "" {
		fmt.Fprintf(&b, "   artifacts: %s\n", r.Artifacts)
	}
	return b.String()
}
