package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The linearizability checker re-executes this binary (see checkLinearizable).
	if dir := os.Getenv(checkEnv); dir != "" {
		os.Exit(runCheckerSubprocess(dir))
	}
	os.Exit(m.Run())
}

// scenarios are the fault injections (nemeses) the suite runs, one run each.
// One run covers both raft log stores. wal, the default for new data dirs,
// runs the crash and restart scenarios (a torn append, a restart after a
// truncated tail), pausing the leader and one-way loss (a deposed leader's
// unreplicated tail truncated while it runs) and membership; bolt, which
// existing data dirs keep, runs isolation and partitions (truncations too)
// and the clock faults. QKV_CHAOS_RAFT_LOG=wal or =bolt puts every scenario
// on one store.
var scenarios = []scenario{
	{name: "1-kill", description: "SIGKILL a random node, restart it after 2-4 s", nodes: 3, build: "race", nemesis: killRandom, raftLog: "wal"},
	{name: "2-pause-leader", description: "SIGSTOP the leader for 4 s, then SIGCONT", nodes: 3, build: "plain", nemesis: pauseLeader, raftLog: "wal"},
	{name: "3-isolate-leader", description: "cut the leader off from its peers for 5 s; clients still reach it", nodes: 3, build: "plain", nemesis: isolateLeader, raftLog: "bolt"},
	{name: "4-partition", description: "random minority/majority partitions of five nodes", nodes: 5, build: "plain", nemesis: randomPartition, raftLog: "bolt"},
	{name: "5-one-way", description: "drop only the leader's inbound peer traffic for 5 s", nodes: 3, build: "plain", nemesis: oneWayLeader, raftLog: "wal"},
	{name: "6-restarts", description: "rolling graceful restart of every node, then SIGKILL all at once and restart", nodes: 3, build: "race", nemesis: rollingThenKillAll, raftLog: "wal"},
	{name: "7-membership", description: "remove a node (a follower, then the leader), wipe it, start it empty with --join, until a voter again", nodes: 3, build: "plain", nemesis: removeRejoin, raftLog: "wal"},
	{name: "8-clock", description: "under load, the leader's clock jumps 20 min ahead, a leader's 20 min behind, a follower's 20 min ahead and it is offered leadership", nodes: 3, build: "testclock", nemesis: clockFaults, raftLog: "bolt"},
	{name: "9-corrupt", description: "stop a node, flip a bit in its stored term or in a log entry, start it: it must refuse; then remove it, wipe its data dir and rejoin it", nodes: 3, build: "plain", nemesis: corruptRejoin, raftLog: "bolt"},
	// Disk faults (disk.go): data dirs on faultfs mounts. Each runs on one
	// log store here; the long profile and QKV_CHAOS_DISK_MATRIX=1 run each
	// on both (diskMatrix).
	{name: "10-power-loss", description: "power loss (SIGKILL and every un-fsynced write and directory change dropped) of one node, then two, then all three", nodes: 3, build: "plain", nemesis: powerLosses, raftLog: "bolt", disk: true},
	{name: "11-sync-stall", description: "every fsync on the leader's disk blocks for 10 s, for 10 s", nodes: 3, build: "plain", nemesis: stallLeaderSync, raftLog: "wal", disk: true},
	{name: "12-disk-eio", description: "every write and fsync on a node's disk fails with EIO (the leader's, then a follower's): it fail-stops and answers /readyz 503 reason disk; restarted once the disk is back", nodes: 3, build: "plain", nemesis: diskErrors, raftLog: "bolt", disk: true},
}

// selfTests run deliberately broken kvnodes: one serving reads from local
// state without ReadIndex, under the pause and isolation nemeses (the
// checker must report each history as not linearizable), and one that never
// fsyncs its raft log, under power loss (lost acknowledged writes must be
// reported).
var selfTests = []scenario{
	{name: "selftest-pause-leader", description: "BROKEN BUILD under SIGSTOP of the leader; must be caught", nodes: 3, build: "brokenreads", nemesis: pauseLeader, expectIllegal: true},
	{name: "selftest-isolate-leader", description: "BROKEN BUILD with the leader isolated; must be caught", nodes: 3, build: "brokenreads", nemesis: isolateLeader, expectIllegal: true},
	{name: "selftest-power-loss", description: "BROKEN BUILD that never fsyncs its raft log (-tags nosync) under power loss; lost acknowledged writes must be reported", nodes: 3, build: "nosync", nemesis: powerLosses, raftLog: "bolt", disk: true, expectLostAcks: true},
}

var selfTestProfile = profile{name: "selftest", warmup: 4 * time.Second, faults: 14 * time.Second, after: 2 * time.Second, linLimit: 60 * time.Second}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection suite with real processes and partitions; skipped with -short")
	}
	requireRoot(t)
	prof := ciProfile
	if os.Getenv("QKV_CHAOS_PROFILE") == "long" {
		prof = longProfile
	}
	seed := chaosSeed(t)
	art := artifactsDir(t)
	only := os.Getenv("QKV_CHAOS_ONLY") // comma-separated scenario names, for local runs
	began := time.Now()
	var reports []*scenarioReport
	for i, sc := range diskMatrix(scenarios, prof == longProfile || os.Getenv("QKV_CHAOS_DISK_MATRIX") == "1") {
		if only != "" && !containsName(only, sc.name) {
			continue
		}
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			reports = append(reports, runScenario(t, sc, prof, seed+int64(i), kvnodeBinary(t, sc.build), art))
		})
	}
	writeRunReport(t, art, "chaos", prof, seed, reports, time.Since(began))
}

func TestSelfTest(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection suite with real processes and partitions; skipped with -short")
	}
	requireRoot(t)
	seed := chaosSeed(t)
	art := artifactsDir(t)
	only := os.Getenv("QKV_CHAOS_ONLY")
	began := time.Now()
	var reports []*scenarioReport
	for i, sc := range selfTests {
		if only != "" && !containsName(only, sc.name) {
			continue
		}
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			reports = append(reports, runScenario(t, sc, selfTestProfile, seed+100+int64(i), kvnodeBinary(t, sc.build), art))
		})
	}
	writeRunReport(t, art, "selftest", selfTestProfile, seed, reports, time.Since(began))
}

// diskMatrix returns the scenarios with, when both is set, each disk
// scenario also run on the other raft log store (named <name>-<store>).
func diskMatrix(scs []scenario, both bool) []scenario {
	var out []scenario
	for _, sc := range scs {
		out = append(out, sc)
		if both && sc.disk {
			other := sc
			other.raftLog = raftLogOther(sc.raftLog)
			other.name = sc.name + "-" + other.raftLog
			out = append(out, other)
		}
	}
	return out
}

// raftLogOther is the log store that is not s.
func raftLogOther(s string) string {
	if s == "wal" {
		return "bolt"
	}
	return "wal"
}

func containsName(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if s == name || strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// chaosSeed is QKV_CHAOS_SEED, or derived from the clock (and logged, so a
// failing run can be repeated).
func chaosSeed(t *testing.T) int64 {
	if s := os.Getenv("QKV_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("QKV_CHAOS_SEED=%q: %v", s, err)
		}
		return v
	}
	seed := time.Now().UnixNano() % 1_000_000
	t.Logf("seed %d (repeat with QKV_CHAOS_SEED=%d)", seed, seed)
	return seed
}

var (
	repoRootOnce sync.Once
	repoRootDir  string
	artOnce      sync.Once
	artDir       string
)

func repoRoot(t testing.TB) string {
	repoRootOnce.Do(func() {
		dir, _ := os.Getwd()
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				repoRootDir = d
				return
			}
			if filepath.Dir(d) == d {
				return
			}
		}
	})
	if repoRootDir == "" {
		t.Fatal("cannot find the repository root (go.mod)")
	}
	return repoRootDir
}

// artifactsDir is artifacts/chaos/<run> in the repository (git-ignored).
func artifactsDir(t testing.TB) string {
	artOnce.Do(func() {
		artDir = filepath.Join(repoRoot(t), "artifacts", "chaos", time.Now().Format("20060102-150405"))
		if d := os.Getenv("QKV_CHAOS_ARTIFACTS"); d != "" {
			artDir = d
		}
	})
	if err := os.MkdirAll(artDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return artDir
}

var (
	buildMu  sync.Mutex
	binaries = map[string]string{}
	binDir   string
)

// kvnodeBinary builds cmd/kvnode once per test process in the given flavour:
// plain, race (-race) or brokenreads (-tags brokenreads).
func kvnodeBinary(t testing.TB, build string) string {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[build]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "qkc-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	goTool := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	} else if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		goTool = "/usr/local/go/bin/go"
	}
	out := filepath.Join(binDir, "kvnode-"+build)
	args := []string{"build", "-o", out}
	switch build {
	case "race":
		args = append(args, "-race")
	case "brokenreads":
		args = append(args, "-tags", "brokenreads")
	case "testclock":
		args = append(args, "-tags", "testclock")
	case "nosync":
		args = append(args, "-tags", "nosync")
	}
	args = append(args, "./cmd/kvnode")
	start := time.Now()
	cmd := exec.Command(goTool, args...)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	t.Logf("built kvnode (%s) in %.1fs", build, time.Since(start).Seconds())
	binaries[build] = out
	return out
}

// runReport is the whole run: every scenario's report and the totals.
type runReport struct {
	Suite     string            `json:"suite"`
	Profile   string            `json:"profile"`
	Seed      int64             `json:"seed"`
	Seconds   float64           `json:"seconds"`
	Totals    map[string]int    `json:"totals"`
	Scenarios []*scenarioReport `json:"scenarios"`
}

func writeRunReport(t *testing.T, dir, suite string, prof profile, seed int64, reps []*scenarioReport, took time.Duration) {
	rr := runReport{Suite: suite, Profile: prof.name, Seed: seed, Seconds: took.Seconds(), Totals: map[string]int{}, Scenarios: reps}
	var text strings.Builder
	for _, r := range reps {
		if r == nil {
			continue
		}
		rr.Totals["opsInvoked"] += r.Ops.Invoked
		rr.Totals["opsOK"] += r.Ops.OK
		rr.Totals["opsFailed"] += r.Ops.Failed
		rr.Totals["opsUnknown"] += r.Ops.Unknown
		rr.Totals["opsChecked"] += r.OpsChecked
		rr.Totals["faults"] += len(r.Faults)
		rr.Totals["leaderChanges"] += r.LeaderChgs
		rr.Totals["anomalies"] += r.Anomalies.total()
		text.WriteString(r.text())
	}
	fmt.Fprintf(&text, "== %s (%s profile, seed %d): %d scenarios in %.0fs; ops invoked %d, ok %d, failed %d, unknown %d; checked %d; faults %d; leader changes %d; anomalies %d\n",
		suite, prof.name, seed, len(reps), took.Seconds(), rr.Totals["opsInvoked"], rr.Totals["opsOK"], rr.Totals["opsFailed"], rr.Totals["opsUnknown"],
		rr.Totals["opsChecked"], rr.Totals["faults"], rr.Totals["leaderChanges"], rr.Totals["anomalies"])
	writeJSON(t, filepath.Join(dir, suite+"-report.json"), rr)
	os.WriteFile(filepath.Join(dir, suite+"-report.txt"), []byte(text.String()), 0o644)
	t.Logf("report: %s\n%s", filepath.Join(dir, suite+"-report.txt"), text.String())
}
