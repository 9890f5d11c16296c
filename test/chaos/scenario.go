package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// scenario is one nemesis run on a fresh cluster.
type scenario struct {
	name        string
	description string
	nodes       int
	build       string // "plain", "race" or "brokenreads"
	nemesis     nemesis
	// raftLog is the nodes' --raft-log (bolt or wal; "" = kvnode's
	// default); QKV_CHAOS_RAFT_LOG overrides it for every scenario.
	raftLog string
	// expectIllegal: the self-test; the scenario passes only if porcupine
	// rejects the history.
	expectIllegal bool
	// disk: every node's data dir is a faultfs mount (disk.go).
	disk bool
	// expectLostAcks: the no-sync self-test; the scenario passes only if
	// acknowledged writes are reported lost.
	expectLostAcks bool
}

// profile sets a run's lengths.
type profile struct {
	name     string
	warmup   time.Duration // healthy load before the first fault
	faults   time.Duration // the nemesis runs this long (its last fault may overrun)
	after    time.Duration // healthy load after the last heal
	linLimit time.Duration // porcupine's time limit
}

var (
	ciProfile   = profile{name: "ci", warmup: 4 * time.Second, faults: 20 * time.Second, after: 3 * time.Second, linLimit: 90 * time.Second}
	longProfile = profile{name: "long", warmup: 10 * time.Second, faults: 60 * time.Second, after: 10 * time.Second, linLimit: 5 * time.Minute}
)

// Guard thresholds: the load before the first fault must be real.
const (
	minWarmupOK     = 100
	minWarmupWrites = 30
)

// runScenario runs sc under prof and returns its report; t fails on any
// anomaly (or, for the self-test, when the broken build is not caught).
func runScenario(t *testing.T, sc scenario, prof profile, seed int64, bin string, artifacts string) *scenarioReport {
	began := time.Now()
	raftLog := sc.raftLog
	if v := os.Getenv("QKV_CHAOS_RAFT_LOG"); v != "" {
		raftLog = v
	}
	rep := &scenarioReport{Name: sc.name, Description: sc.description, Nodes: sc.nodes, Build: sc.build, RaftLog: raftLog, Seed: seed,
		FaultsByType: map[string]int{}, Phases: map[string]phaseStats{}, SelfTest: sc.expectIllegal || sc.expectLostAcks}
	dir := t.TempDir()
	outDir := filepath.Join(artifacts, sc.name)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

	nw := newNetwork(t, sc.nodes)
	var kb [16]byte
	rand.Read(kb[:])
	apiKey := hex.EncodeToString(kb[:])
	nodes, err := newNodes(nw.hosts, dir, bin, apiKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raftLog != "" {
		for _, n := range nodes {
			n.extra = append(n.extra, "--raft-log", raftLog)
		}
	}
	if sc.disk {
		mountDisks(t, dir, nodes)
	}
	c := &cluster{t: t, nw: nw, nodes: nodes, api: newAPIClient(apiKey, 2*time.Second), rng: mrand.New(mrand.NewSource(seed)), start: time.Now(), artifacts: outDir}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			for _, n := range nodes {
				if n.running() {
					n.kill()
				}
			}
		}
		for _, n := range nodes {
			n.closeLog()
		}
	})
	for _, n := range nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		saveLogs(t, nodes, outDir)
		t.Fatalf("cluster did not come up: %v", err)
	}
	c.start = time.Now()
	c.logf("cluster up: %d nodes on %s.0/24 (run %s), %s build", sc.nodes, nw.subnet, nw.run, sc.build)

	mon := startMonitor(nodes, apiKey, c.start)
	ws, err := startWatchers(nodes, apiKey)
	if err != nil {
		saveLogs(t, nodes, outDir)
		t.Fatal(err)
	}
	wcfg := defaultWorkload()
	crs, err := startCacheReaders(nodes, apiKey, wcfg.regKeys, seed, c.start)
	if err != nil {
		ws.stop()
		saveLogs(t, nodes, outDir)
		t.Fatal(err)
	}
	wl := startWorkload(wcfg, nodes, apiKey, seed, c.start)
	tw := startTransfers(nodes, apiKey, seed, c.start)
	sleep(context.Background(), prof.warmup)
	ctx, cancel := context.WithTimeout(context.Background(), prof.faults)
	sc.nemesis(ctx, c)
	cancel()
	c.healEverything()
	if err := c.waitHealthy(30 * time.Second); err != nil {
		t.Errorf("after healing: %v", err)
	}
	healed := c.since()
	sleep(context.Background(), prof.after)
	ops := wl.stop()
	crs.stop()
	txns := tw.stop()
	loadEnd := c.since()
	c.logf("load stopped: %d ops", len(ops))

	// Convergence, then every acknowledged ack/ write on every node.
	took, state, err := waitConverged(c.api, nodes, 10*time.Second)
	rep.ConvergedSec = took.Seconds()
	if err != nil {
		rep.Anomalies.Diverged = 1
		rep.Converge = state
	}
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var lost, invented []string
	rep.AckChecked, lost, invented = checkAcks(actx, c.api, nodes, ops)
	acancel()
	rep.AckProblems = append(lost, invented...)
	rep.Anomalies.LostAcks, rep.Anomalies.InventedAcks = len(lost), len(invented)
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	rep.KeysListed, rep.ListProblems = checkListing(lctx, c.api, nodes, ops)
	lcancel()
	rep.Anomalies.UnexpectedKeys = len(rep.ListProblems)
	rep.Watch = finishWatchers(c.api, nodes, ws, ops)
	rep.Anomalies.Watch = len(rep.Watch.Problems)
	rep.Cache = checkCacheReads(crs, ops, cacheStaleness)
	rep.Anomalies.Cache = len(rep.Cache.Problems)
	tctx, tcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	rep.Transfers = checkTransfers(tctx, c.api, nodes, tw, txns)
	tcancel()
	rep.Anomalies.Transfers = len(rep.Transfers.Problems)
	mon.stop()
	samples := mon.samples()

	// Graceful stop of every node: a clean exit (code 0) is required; a race
	// detector report makes a race build exit 66.
	for _, n := range nodes {
		if err := n.stop(20 * time.Second); err != nil {
			rep.Anomalies.UncleanExits++
			rep.LogProblems = append(rep.LogProblems, err.Error())
		}
	}
	stopped = true
	for _, n := range nodes {
		n.closeLog()
		bad, err := scanLog(n.logPath)
		if err != nil {
			bad = append(bad, err.Error())
		}
		for _, l := range bad {
			rep.LogProblems = append(rep.LogProblems, n.id+": "+truncate(l, 300))
		}
		rep.Anomalies.LogProblems += len(bad)
	}

	// The checkers on the history.
	rep.Linear = checkLinearizable(ops, outDir, prof.linLimit)
	switch rep.Linear.Result {
	case "Ok":
	case "Illegal":
		rep.Anomalies.NonLinearizable = 1
	default:
		rep.Anomalies.CheckerIncomplete = 1
	}
	rep.Leaders = leaderTerms(samples)
	rep.LeaderChgs = max(0, len(rep.Leaders)-1)
	// The TTL windows widen by the bound the cluster promises to keep clocks
	// within, whatever offset a nemesis injected.
	rep.TTL = checkTTL(ops, c.start, -maxClockOffset, maxClockOffset, rep.Leaders)
	if c.probe != nil {
		rep.ClockProbe, rep.ClockProblems = c.probe.checked, c.probe.problems
		rep.Anomalies.ClockProbe = len(c.probe.problems)
	}
	for _, f := range c.faults {
		if f.leaderMovedAfter > 0 {
			rep.ClockDetectMs = append(rep.ClockDetectMs, f.leaderMovedAfter.Milliseconds())
		}
	}
	rep.Anomalies.TTLResurrections = len(rep.TTL.Resurrections)
	rep.Anomalies.TTLEarlyExpiries = len(rep.TTL.EarlyExpiries)
	rep.Anomalies.TTLBadStamps = len(rep.TTL.BadStamps)

	// Counts, phases, and the guard.
	rep.Ops = countOps(ops)
	rep.Conditional = countConditional(ops)
	rep.OpsChecked = rep.Linear.Ops + rep.AckChecked + rep.TTL.Reads + rep.KeysListed + rep.Transfers.LinearOps + rep.Transfers.NodeChecks + rep.Watch.Events + rep.Cache.Reads
	rep.Faults = c.faults
	for _, f := range c.faults {
		rep.FaultsByType[f.Kind]++
	}
	firstFault, lastHeal := healed, healed
	if len(c.faults) > 0 {
		firstFault = c.faults[0].Start
		for _, f := range c.faults {
			lastHeal = max(lastHeal, f.End)
		}
	}
	rep.Phases["before"] = phase(ops, 0, firstFault)
	rep.Phases["during"] = phase(ops, firstFault, lastHeal)
	rep.Phases["after"] = phase(ops, lastHeal, loadEnd)
	rep.LongestWrite = longestWriteGap(ops, firstFault, loadEnd).Seconds()
	rep.Guard = guard(ops, samples, c.faults, firstFault)
	rep.Anomalies.GuardFailures = len(rep.Guard)
	rep.Seconds = time.Since(began).Seconds()

	failed := rep.Anomalies.total() > 0
	if sc.expectLostAcks {
		// The no-sync self-test needs lost acknowledged writes; the rest
		// (divergence, history anomalies) is expected fallout.
		failed = rep.Anomalies.LostAcks == 0 || rep.Anomalies.GuardFailures > 0
	}
	if sc.expectIllegal {
		// The self-test only needs porcupine to reject the broken build; its
		// other findings are expected fallout of the broken reads.
		failed = rep.Linear.Result != "Illegal" || rep.Anomalies.GuardFailures > 0
	}
	if failed || rep.Linear.Result == "Illegal" {
		saveLogs(t, nodes, outDir)
		rep.Artifacts = outDir
	} else {
		os.Remove(filepath.Join(outDir, "history.json"))
	}
	writeJSON(t, filepath.Join(outDir, "report.json"), rep)
	os.WriteFile(filepath.Join(outDir, "report.txt"), []byte(rep.text()), 0o644)
	t.Log("\n" + rep.text())
	if failed {
		if sc.expectLostAcks {
			t.Errorf("self-test: the build that never syncs lost no acknowledged write under power loss: the power-loss scenario cannot be trusted")
		} else if sc.expectIllegal {
			t.Errorf("self-test: the deliberately broken build was NOT reported as non-linearizable (result %s): the checker cannot be trusted", rep.Linear.Result)
		} else {
			t.Errorf("scenario %s found anomalies; artifacts in %s", sc.name, outDir)
		}
	}
	return rep
}

// guard verifies that the scenario exercised what it claims: real load before
// the first fault, and every fault took effect.
func guard(ops []Op, samples []sample, faults []*fault, firstFault int64) []string {
	var problems []string
	okOps, okWrites := 0, 0
	for _, o := range ops {
		if o.Outcome == outOK && o.Return < firstFault {
			okOps++
			if o.isWrite() {
				okWrites++
			}
		}
	}
	if okOps < minWarmupOK || okWrites < minWarmupWrites {
		problems = append(problems, fmt.Sprintf("idle cluster: only %d ok ops (%d writes) before the first fault; want >= %d (%d)", okOps, okWrites, minWarmupOK, minWarmupWrites))
	}
	if len(faults) < 2 {
		problems = append(problems, fmt.Sprintf("only %d fault injections; want at least 2", len(faults)))
	}
	cond := countConditional(ops)
	if cond.IfMatchOK == 0 || cond.IfMatch412 == 0 || cond.IfAbsentOK == 0 || cond.IfAbsent412 == 0 {
		problems = append(problems, fmt.Sprintf("conditional puts did not both succeed and fail: %+v", cond))
	}
	memberships, leaderRemoved := 0, false
	for _, f := range faults {
		if f.needMembership {
			memberships++
			leaderRemoved = leaderRemoved || f.removedLeader
		}
	}
	if memberships > 0 && !leaderRemoved {
		problems = append(problems, "no membership fault removed the leader")
	}
	for i, f := range faults {
		var fp []string
		if f.needTermRise {
			before := maxTerm(samples, f.Start-int64(2*time.Second), f.Start)
			after := maxTerm(samples, f.Start, f.End+int64(3*time.Second))
			if after <= before {
				fp = append(fp, fmt.Sprintf("term did not rise (max %d before, %d during)", before, after))
			}
		}
		for _, id := range f.needFailedOn {
			failed := false
			for _, o := range ops {
				if o.Node == id && o.Outcome != outOK && o.Call >= f.Start && o.Call <= f.End {
					failed = true
					break
				}
			}
			if !failed {
				fp = append(fp, "no request to "+id+" failed during the fault")
			}
		}
		for _, id := range f.needKilled {
			found := false
			for _, k := range f.killedObserved {
				found = found || k == id
			}
			if !found {
				fp = append(fp, id+" did not die of SIGKILL")
			}
		}
		if (f.needMembership || f.needRejoin) && !f.sawAbsent {
			fp = append(fp, "the leader never listed the node as absent from the configuration")
		}
		if f.needRefused && !f.refused {
			fp = append(fp, "the node did not refuse to start on its damaged data dir with an error naming the file")
		}
		if (f.needMembership || f.needRejoin) && !f.sawVoter {
			fp = append(fp, "the leader never listed the rejoined node as a voter")
		}
		if f.needLeaderMoved && f.leaderMovedAfter == 0 {
			fp = append(fp, "leadership did not leave the node whose clock jumped within 10 s")
		}
		if f.needTransferRefused && !f.transferRefused {
			fp = append(fp, "a leadership transfer to the skewed node was not refused with clock_offset")
		}
		if f.needDiskReady && !f.diskReady {
			fp = append(fp, "the node whose disk failed never answered /readyz 503 with reason disk")
		}
		if f.needStalled && f.stalledSyncs == 0 {
			fp = append(fp, "no sync was held by the stall")
		}
		f.Verified = len(fp) == 0
		f.GuardProblems = fp
		for _, p := range fp {
			problems = append(problems, fmt.Sprintf("fault %d (%s on %v): %s", i+1, f.Kind, f.Nodes, p))
		}
	}
	return problems
}

func saveLogs(t testing.TB, nodes []*node, outDir string) {
	for _, n := range nodes {
		if err := copyFile(n.logPath, filepath.Join(outDir, n.id+".log")); err != nil {
			t.Logf("save log: %v", err)
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func writeJSON(t testing.TB, path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Errorf("write %s: %v", path, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// sortedKinds lists a report's fault kinds.
func sortedKinds(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
