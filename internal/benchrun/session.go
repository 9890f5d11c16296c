package benchrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const sessionUsage = `session-median.sh - the session workload (kvbench -workload session: 90 %
linearizable GET / 10 % PUT with TTL, 16 connections, 10k preloaded keys)
through the leader, through one follower and round-robin over the three
nodes, with etcd's same workload through its v3 JSON gateway (leader,
follower, round-robin over its three members) as the reference. RUNS rounds
(default 3); in every round each tree, then etcd, runs back to back, so a
change in the shared machine's load hits every column of one round alike.
Prints a table of medians over the rounds.

  scripts/session-median.sh                          # this tree, 3 rounds
  TREES="before=/tmp/old after=." scripts/session-median.sh   # A/B of two source trees
  RUNS=1 DUR=5s ETCD=0 scripts/session-median.sh     # quick, without etcd

TREES: space-separated LABEL=DIR; DIR is a quorumkv source tree whose
scripts/cluster.sh builds and starts the cluster (so each tree runs its own
kvnode). kvbench is built from this tree. "node CPU µs/req" is the three
kvnode processes' CPU time (/proc/PID/stat) over a row's warmup and run,
per request: the machine's cost of a request on that path (etcd: not
sampled). Other knobs: DUR (10s), WARMUP (2s), C (16), KEYS (10000),
READ_FRACTION (0.9), OUT_DIR (raw JSON and the table; default a new /tmp
directory). Ports: HTTP 18281-18283, peers 19281-19283, etcd 24881-24893;
all processes started here are stopped on exit.
`

// sessionConfig is session-median's environment.
type sessionConfig struct {
	runs, conns, keys int
	dur, warmup       string
	runSeconds        float64 // dur + warmup: the time node CPU is sampled over
	readFraction      string
	trees             []tree
	etcd              bool
	outDir            string
}

type tree struct{ label, dir string }

func parseSessionEnv(getenv func(string) string, repo string) (sessionConfig, error) {
	r := &envReader{getenv: getenv}
	c := sessionConfig{
		runs: r.int("RUNS", 3, 1), conns: r.int("C", 16, 1), keys: r.int("KEYS", 10000, 1),
		dur: r.str("DUR", "10s"), warmup: r.str("WARMUP", "2s"), outDir: getenv("OUT_DIR"),
	}
	d := r.duration("DUR", 10*time.Second)
	w := r.duration("WARMUP", 2*time.Second)
	c.runSeconds = d.Seconds() + w.Seconds()
	r.float("READ_FRACTION", 0.9, 0, 1)
	c.readFraction = r.str("READ_FRACTION", "0.9")
	switch v := r.str("ETCD", "1"); v {
	case "0", "1":
		c.etcd = v == "1"
	default:
		r.fail(fmt.Errorf("ETCD must be 0 or 1, got %q", v))
	}
	for _, t := range strings.Fields(r.str("TREES", "this="+repo)) {
		label, dir, ok := strings.Cut(t, "=")
		if !ok || label == "" || dir == "" || strings.ContainsAny(label, "-| ") {
			r.fail(fmt.Errorf("TREES: %q is not LABEL=DIR (a label without '-' or '|')", t))
			continue
		}
		c.trees = append(c.trees, tree{label, dir})
	}
	return c, r.err
}

// sessionRow is one kvbench run: a system's path in one round.
type sessionRow struct {
	label, node string // node: leader, follower or roundrobin
	round       int
	rps         float64 // floored
	getP50      float64
	getP99      float64
	putP99      float64
	errors      uint64
	cpuUsPerReq float64 // 0: not sampled
}

var sessionNodes = []string{"leader", "follower", "roundrobin"}

// sessionTable formats the medians over rounds, labels in order. Ratios are
// medians of per-round ratios (the rows of one round ran back to back).
func sessionTable(rows []sessionRow, labels []string) string {
	type key struct{ label, node string }
	byKey := map[key][]sessionRow{}
	perRound := map[key]map[int]float64{}
	for _, r := range rows {
		k := key{r.label, r.node}
		byKey[k] = append(byKey[k], r)
		if perRound[k] == nil {
			perRound[k] = map[int]float64{}
		}
		perRound[k][r.round] = r.rps
	}
	var b strings.Builder
	b.WriteString("| system | node | req/s | GET p50 ms | GET p99 ms | PUT p99 ms | errors | node CPU µs/req | vs own leader | vs etcd same node | req/s per round |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range labels {
		for _, n := range sessionNodes {
			k := key{l, n}
			rs := byKey[k]
			if len(rs) == 0 {
				continue
			}
			var rps, g50, g99, p99, cpu, own, ref []float64
			var errs uint64
			for _, r := range rs {
				rps, g50, g99, p99 = append(rps, r.rps), append(g50, r.getP50), append(g99, r.getP99), append(p99, r.putP99)
				cpu = append(cpu, r.cpuUsPerReq)
				errs += r.errors
			}
			var per []string
			for round := 1; round <= 100; round++ {
				v, ok := perRound[k][round]
				if !ok {
					continue
				}
				per = append(per, strconv.FormatFloat(v, 'f', -1, 64))
				if lv, ok := perRound[key{l, "leader"}][round]; ok && lv > 0 {
					own = append(own, v/lv)
				}
				if ev, ok := perRound[key{"etcd", n}][round]; l != "etcd" && ok && ev > 0 {
					ref = append(ref, v/ev)
				}
			}
			cpuS, ownS, refS := "-", "-", "-"
			if c := Median(cpu); c > 0 {
				cpuS = fmt.Sprintf("%.0f", c)
			}
			if len(own) > 0 {
				ownS = fmt.Sprintf("%.0f %%", 100*Median(own))
			}
			if len(ref) > 0 {
				refS = fmt.Sprintf("×%.2f", Median(ref))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s |\n", l, n, Median(rps),
				Median(g50), Median(g99), Median(p99), errs, cpuS, ownS, refS, strings.Join(per, " "))
		}
	}
	return b.String()
}

func sessionHeader(c sessionConfig) string {
	f, _ := strconv.ParseFloat(c.readFraction, 64)
	return fmt.Sprintf("Session workload: %.6g %% GET (linearizable) / the rest PUT (ttl 3600 s), c%d, %d keys, %s per row after %s warmup; median of %d rounds.",
		f*100, c.conns, c.keys, c.dur, c.warmup, c.runs)
}

const (
	sessionHTTPBase = 18280
	sessionPeerBase = 19280
	sessionEtcdBase = 24880
)

// session is one session-median invocation.
type session struct {
	e    Env
	c    sessionConfig
	work string
	kb   *kvbench
	hz   int64
	rows []sessionRow
	tree string // the tree whose cluster runs, "" when none
	etcd *etcdCluster
}

// SessionMedian is scripts/session-median.sh.
func SessionMedian(ctx context.Context, e Env, args []string) error {
	if done, err := envOnly(e, args, sessionUsage); done || err != nil {
		return err
	}
	c, err := parseSessionEnv(e.Getenv, e.Repo)
	if err != nil {
		return err
	}
	if c.etcd {
		if _, err := exec.LookPath("etcd"); err != nil {
			return errors.New("ETCD=1 needs etcd (apt-get install etcd-server etcd-client), or run with ETCD=0")
		}
	}
	for i, t := range c.trees {
		if st, err := os.Stat(filepath.Join(t.dir, "scripts", "cluster.sh")); err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("TREES: %s has no scripts/cluster.sh", t.dir)
		}
		if c.trees[i].dir, err = filepath.Abs(t.dir); err != nil {
			return err
		}
	}
	if c.outDir, err = outputDir(c.outDir, "session-median."); err != nil {
		return err
	}
	s := &session{e: e, c: c, hz: clockTicks()}
	if s.work, err = os.MkdirTemp("", "session-median-work."); err != nil {
		return err
	}
	defer func() {
		s.stopCluster()
		s.stopEtcd()
		os.RemoveAll(s.work)
	}()
	e.logf("building kvbench")
	if s.kb, err = buildKvbench(ctx, e.Repo, s.work); err != nil {
		return err
	}
	var labels []string
	for round := 1; round <= c.runs; round++ {
		for _, t := range c.trees {
			if round == 1 {
				labels = append(labels, t.label)
			}
			if err := s.runTree(ctx, round, t); err != nil {
				return err
			}
		}
		if c.etcd {
			if err := s.runEtcd(ctx, round); err != nil {
				return err
			}
		}
	}
	if c.etcd {
		labels = append(labels, "etcd")
	}
	var tsv strings.Builder
	for _, r := range s.rows {
		fmt.Fprintf(&tsv, "%s\t%s\t%d\t%.0f\t%g\t%g\t%g\t%d\t%.0f\n", r.label, r.node, r.round, r.rps, r.getP50, r.getP99, r.putP99, r.errors, r.cpuUsPerReq)
	}
	if err := os.WriteFile(filepath.Join(c.outDir, "rows.tsv"), []byte(tsv.String()), 0o644); err != nil {
		return err
	}
	table := sessionHeader(c) + "\n\n" + sessionTable(s.rows, labels)
	fmt.Fprint(e.Out, table)
	if err := os.WriteFile(filepath.Join(c.outDir, "median.md"), []byte(table), 0o644); err != nil {
		return err
	}
	e.logf("raw JSON, rows.tsv and median.md in %s", c.outDir)
	return nil
}

// bench runs one row; pids are the nodes whose CPU is sampled (none: etcd).
func (s *session) bench(ctx context.Context, label, node string, round int, pids []int, args ...string) error {
	name := fmt.Sprintf("r%d-%s-%s", round, label, node)
	before := make([]int64, len(pids))
	for i, p := range pids {
		before[i] = processTicks(p)
	}
	args = append([]string{"-workload", "session", "-read-fraction", s.c.readFraction, "-c", strconv.Itoa(s.c.conns),
		"-d", s.c.dur, "-warmup", s.c.warmup, "-keys", strconv.Itoa(s.c.keys)}, args...)
	r, err := s.kb.run(ctx, filepath.Join(s.c.outDir, name+".json"), args...)
	if err != nil {
		return fmt.Errorf("kvbench %s failed: %w", name, err)
	}
	row := sessionRow{label: label, node: node, round: round, rps: float64(int64(r.Total.Rate)),
		getP50: r.Ops["get"].Latency.P50, getP99: r.Ops["get"].Latency.P99, putP99: r.Ops["put"].Latency.P99, errors: r.Total.Errors}
	cpuNote := ""
	if len(pids) > 0 {
		var perNode []string
		var cpuMs int64
		for i, p := range pids {
			ms := (processTicks(p) - before[i]) * 1000 / s.hz
			cpuMs += ms
			perNode = append(perNode, strconv.FormatInt(ms, 10))
		}
		if err := os.WriteFile(filepath.Join(s.c.outDir, name+".cpu"), []byte(strings.Join(perNode, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		if r.Total.Rate > 0 {
			row.cpuUsPerReq = float64(int64(float64(cpuMs) * 1000 / (r.Total.Rate * s.c.runSeconds)))
		}
		cpuNote = ", node CPU ms (n1 n2 n3) " + strings.Join(perNode, " ")
	}
	s.rows = append(s.rows, row)
	fmt.Fprintf(s.e.Err, "%s: %d req/s, GET p50 %g p99 %g ms, errors %d%s\n", name, int64(r.Total.Rate),
		row.getP50, row.getP99, row.errors, cpuNote)
	return nil
}

func (s *session) clusterEnv() []string {
	return append(os.Environ(), "KV_CLUSTER_DIR="+filepath.Join(s.work, "cluster"),
		"KV_CLUSTER_HTTP_BASE="+strconv.Itoa(sessionHTTPBase), "KV_CLUSTER_PEER_BASE="+strconv.Itoa(sessionPeerBase))
}

func (s *session) stopCluster() {
	if s.tree == "" {
		return
	}
	cmd := exec.Command(filepath.Join(s.tree, "scripts", "cluster.sh"), "stop")
	cmd.Env = s.clusterEnv()
	_ = cmd.Run()
	s.tree = ""
}

func (s *session) runTree(ctx context.Context, round int, t tree) error {
	dir := filepath.Join(s.work, "cluster")
	os.RemoveAll(dir)
	s.e.logf("round %d: %s (%s): starting a cluster", round, t.label, t.dir)
	s.tree = t.dir
	start := exec.CommandContext(ctx, filepath.Join(t.dir, "scripts", "cluster.sh"), "start")
	start.Env = s.clusterEnv()
	if out, err := start.CombinedOutput(); err != nil {
		s.e.Err.Write(out)
		return fmt.Errorf("cluster of %s did not start", t.label)
	}
	// The tree's own cluster.sh started it; devcluster reads its state
	// directory (same layout) for the key, the leader and the pids.
	cl, err := devcluster.Open(devcluster.Config{Dir: dir, HTTPBase: sessionHTTPBase, PeerBase: sessionPeerBase})
	if err != nil {
		return err
	}
	key, err := cl.APIKey()
	if err != nil {
		return err
	}
	ln, _, err := leaderOf(cl)
	if err != nil {
		return fmt.Errorf("%s: %w", t.label, err)
	}
	fn := ln%3 + 1
	s.kb.env = append(os.Environ(), "KV_API_KEY="+key)
	if _, err := s.kb.run(ctx, filepath.Join(s.c.outDir, fmt.Sprintf("r%d-%s-preload.json", round, t.label)),
		"-endpoints", cl.URL(ln), "-keys", strconv.Itoa(s.c.keys), "-preload-only"); err != nil {
		return err
	}
	var pids []int
	for n := 1; n <= 3; n++ {
		b, _ := os.ReadFile(filepath.Join(dir, "n"+strconv.Itoa(n), "pid"))
		p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		pids = append(pids, p)
	}
	urls := cl.URL(1) + "," + cl.URL(2) + "," + cl.URL(3)
	for _, row := range []struct {
		node string
		args []string
	}{{"leader", []string{"-endpoints", cl.URL(ln)}}, {"follower", []string{"-endpoints", cl.URL(fn)}},
		{"roundrobin", []string{"-endpoints", urls, "-endpoint-mode", "roundrobin"}}} {
		if err := s.bench(ctx, t.label, row.node, round, pids, row.args...); err != nil {
			return err
		}
	}
	s.stopCluster()
	return nil
}

func (s *session) stopEtcd() {
	if s.etcd != nil {
		s.etcd.stop()
		s.etcd = nil
	}
}

func (s *session) runEtcd(ctx context.Context, round int) error {
	s.e.logf("round %d: etcd %s: starting three members", round, etcdVersion())
	var err error
	if s.etcd, err = startEtcd(ctx, filepath.Join(s.work, "etcd"), sessionEtcdBase, "session-median"); err != nil {
		return err
	}
	leader, follower, endpoints := s.etcd.leader, s.etcd.follower, s.etcd.endpoints
	if _, err := s.kb.run(ctx, filepath.Join(s.c.outDir, fmt.Sprintf("r%d-etcd-preload.json", round)),
		"-target", "etcd", "-endpoints", leader, "-keys", strconv.Itoa(s.c.keys), "-preload-only"); err != nil {
		return err
	}
	for _, row := range []struct {
		node string
		args []string
	}{{"leader", []string{"-endpoints", leader}}, {"follower", []string{"-endpoints", follower}},
		{"roundrobin", []string{"-endpoints", strings.Join(endpoints, ","), "-endpoint-mode", "roundrobin"}}} {
		if err := s.bench(ctx, "etcd", row.node, round, nil, append([]string{"-target", "etcd"}, row.args...)...); err != nil {
			return err
		}
	}
	s.stopEtcd()
	return nil
}
