package benchrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

const peersUsage = `peers-median.sh - the peer comparison: the shared peer harness
(../shared/bench/peers.sh: etcd and our cluster under the same wrk load)
run RUNS times (default 3) against a fresh local three-node cluster, then a
table of medians per target row: our req/s, etcd's, the ratio (median of the
per-run ratios) and both p99s; then our PUT rows against the same run's Redis
SET with appendonly yes and appendfsync always (the durability-matched
single-node ceiling), medians the same way.

  scripts/peers-median.sh                 # 3 runs, ~10 minutes
  RUNS=1 scripts/peers-median.sh          # one run
  PEERS=/path/to/peers.sh OUT_DIR=/tmp/x scripts/peers-median.sh

The cluster uses HTTP ports 18081-18083 and peer ports 19081-19083 (peers.sh
owns 23791-23803 and 26379+), in a temporary directory removed at the end.
Every run's full table is kept in OUT_DIR (default: a new /tmp directory).
peers.sh's own knobs (DUR, CONNS, KEYS, REDIS_N, ...) pass through to it.
`

// peerCell is one figure set of a row in one run.
type peerCell struct{ rps, p99 float64 }

// peersMedianTable reads the runs' peers.sh tables (in run order) and
// prints, per row of ours, the medians and the per-run ratios to etcd's row
// of the same op, node and connections.
func peersMedianTable(w io.Writer, runs []string) {
	type key struct{ op, node, conns string }
	var order []key
	ours := map[key][]peerCell{}
	theirs := map[key][]peerCell{}
	ratios := map[key][]float64{}
	redis := map[key][]peerCell{}      // the run's Redis SET (appendfsync always), per PUT row
	redisRatios := map[key][]float64{} // our PUT req/s over it
	oursR := map[key][]peerCell{}      // our PUT rows of the runs that have it
	for _, table := range runs {
		etcd := map[key]peerCell{}
		redisSet, haveRedis := redisAlwaysSet(table)
		for _, line := range strings.Split(table, "\n") {
			f := strings.Split(line, "|")
			if len(f) < 9 || !(strings.HasPrefix(line, "| etcd") || strings.HasPrefix(line, "| ours")) {
				continue
			}
			for i := range f {
				f[i] = strings.TrimSpace(f[i])
			}
			rps, _ := strconv.ParseFloat(f[5], 64)
			p99, _ := strconv.ParseFloat(f[7], 64)
			k := key{f[2], f[3], f[4]}
			if strings.HasPrefix(f[1], "etcd") {
				etcd[k] = peerCell{rps, p99}
				continue
			}
			if _, seen := ours[k]; !seen {
				order = append(order, k)
			}
			ours[k] = append(ours[k], peerCell{rps, p99})
			peer := map[string]string{"kv-put": "put", "kv-get": "get-lin"}[k.op]
			if peer == "" {
				peer = "get-ser"
			}
			if e, ok := etcd[key{peer, k.node, k.conns}]; ok && e.rps > 0 {
				theirs[k] = append(theirs[k], e)
				ratios[k] = append(ratios[k], rps/e.rps)
			}
			if k.op == "kv-put" && haveRedis {
				oursR[k] = append(oursR[k], peerCell{rps, p99})
				redis[k] = append(redis[k], redisSet)
				redisRatios[k] = append(redisRatios[k], rps/redisSet.rps)
			}
		}
	}
	med := func(cs []peerCell, p99 bool) float64 {
		var v []float64
		for _, c := range cs {
			if p99 {
				v = append(v, c.p99)
			} else {
				v = append(v, c.rps)
			}
		}
		return Median(v)
	}
	// perRun prints ratios with three decimals; their median is taken of
	// the printed values, so a reader can check it against the column.
	perRun := func(ratios []float64) (string, float64) {
		var per []string
		var rs []float64
		for _, r := range ratios {
			s := fmt.Sprintf("%.3f", r)
			per = append(per, s)
			v, _ := strconv.ParseFloat(s, 64)
			rs = append(rs, v)
		}
		return strings.Join(per, " "), Median(rs)
	}
	fmt.Fprintf(w, "| op | node | conns | ours req/s | etcd req/s | ratio (median of %d) | ratios per run | p99 ours ms | p99 etcd ms |\n", len(runs))
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		per, m := perRun(ratios[k])
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | ×%.2f | %s | %.1f | %.1f |\n", k.op, k.node, k.conns, med(ours[k], false),
			med(theirs[k], false), m, per, med(ours[k], true), med(theirs[k], true))
	}
	if len(redis) == 0 {
		return
	}
	nRedis := 0
	for _, cs := range redis {
		nRedis = max(nRedis, len(cs))
	}
	// Redis with appendfsync always (one fsync per write, no replication)
	// is the durability-matched single-node ceiling; redis-benchmark runs it
	// at 64 connections, so the c64 rows are the like-for-like ones.
	fmt.Fprintf(w, "\n| op | node | conns | ours req/s | Redis SET (appendfsync always, c64) req/s | ratio (median of %d) | ratios per run | p99 ours ms | p99 Redis ms |\n", nRedis)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		if len(redis[k]) == 0 {
			continue
		}
		per, m := perRun(redisRatios[k])
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | ×%.2f | %s | %.1f | %.1f |\n", k.op, k.node, k.conns, med(oursR[k], false),
			med(redis[k], false), m, per, med(oursR[k], true), med(redis[k], true))
	}
}

// redisAlwaysSet finds the SET row of the Redis run with appendonly yes and
// appendfsync always in one peers.sh table ("| redis 7.0.15 (aof-always) |
// set | single | 64 | 41000 | 0.9 | 2.1 | ...").
func redisAlwaysSet(table string) (peerCell, bool) {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 9 || !strings.HasPrefix(line, "| redis") {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if !strings.Contains(f[1], "(aof-always)") || f[2] != "set" {
			continue
		}
		rps, err := strconv.ParseFloat(f[5], 64)
		if err != nil || rps <= 0 {
			return peerCell{}, false
		}
		p99, _ := strconv.ParseFloat(f[7], 64)
		return peerCell{rps, p99}, true
	}
	return peerCell{}, false
}

// PeersMedian is scripts/peers-median.sh.
func PeersMedian(ctx context.Context, e Env, args []string) error {
	if done, err := envOnly(e, args, peersUsage); done || err != nil {
		return err
	}
	r := &envReader{getenv: e.Getenv}
	runs := r.int("RUNS", 3, 1)
	peers := r.str("PEERS", filepath.Join(e.Repo, "..", "shared", "bench", "peers.sh"))
	if r.err != nil {
		return r.err
	}
	if st, err := os.Stat(peers); err != nil || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: no peer harness at %s (set PEERS)", errUsage, peers)
	}
	outDir, err := outputDir(e.Getenv("OUT_DIR"), "peers-median.")
	if err != nil {
		return err
	}
	dir, err := mkdirTemp("peers-median-cluster.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var log strings.Builder
	cl, err := startCluster(e, dir, 18080, 19080, nil, &log)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Stop() }()
	fmt.Fprint(e.Err, log.String())
	key, err := cl.APIKey()
	if err != nil {
		return err
	}
	var tables []string
	for i := 1; i <= runs; i++ {
		leader, follower := 0, 0
		for n := 1; n <= 3; n++ {
			st, err := clusterNodeState(ctx, cl, n)
			if err == nil && st.State == "Leader" {
				leader = n
			} else if err == nil && st.State == "Follower" && follower == 0 {
				follower = n
			}
		}
		if leader == 0 || follower == 0 {
			return fmt.Errorf("no leader/follower found")
		}
		fmt.Fprintf(e.Err, "%s: run %d of %d (leader n%d, follower n%d)\n", e.Name, i, runs, leader, follower)
		out := filepath.Join(outDir, fmt.Sprintf("run%d.md", i))
		cmd := exec.CommandContext(ctx, peers)
		cmd.Env = append(os.Environ(), "KV_TOKEN="+key, "KV_LEADER_URL="+cl.URL(leader), "KV_FOLLOWER_URL="+cl.URL(follower), "OUT="+out)
		cmd.Stderr = e.Err
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", peers, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		tables = append(tables, string(b))
	}
	var table strings.Builder
	peersMedianTable(&table, tables)
	fmt.Fprint(e.Out, table.String())
	if err := os.WriteFile(filepath.Join(outDir, "median.md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.Err, "%s: per-run tables and median.md in %s\n", e.Name, outDir)
	return nil
}
