package benchrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const raftlogUsage = `raftlog-ab.sh - PUT throughput and p99 of the two raft log stores, measured
alternately in one run: for each of RUNS rounds, a fresh three-node cluster
(internal/devcluster, peer mutual TLS on) with KV_RAFT_LOG=bolt, then one with
KV_RAFT_LOG=wal; on each, kvbench's write workload (PUT with TTL, 200-byte
values) at C connections for D against the leader, then against a follower.
Alternating spreads a shared machine's load over both stores; compare the
per-round ratios, not absolute figures.

  scripts/raftlog-ab.sh                    # RUNS=3 C=64 D=10s, ~4 minutes
  RUNS=1 D=5s scripts/raftlog-ab.sh

Ports: KV_CLUSTER_HTTP_BASE / KV_CLUSTER_PEER_BASE (default 18080 / 19080).
Raw kvbench JSON stays in OUT_DIR (default: a new /tmp directory).
`

type raftlogConfig struct {
	runs, conns        int
	dur, outDir        string
	httpBase, peerBase int
}

func parseRaftlogEnv(getenv func(string) string) (raftlogConfig, error) {
	r := &envReader{getenv: getenv}
	c := raftlogConfig{runs: r.int("RUNS", 3, 1), conns: r.int("C", 64, 1), dur: r.str("D", "10s"), outDir: getenv("OUT_DIR"),
		httpBase: r.int("KV_CLUSTER_HTTP_BASE", 18080, 1), peerBase: r.int("KV_CLUSTER_PEER_BASE", 19080, 1)}
	r.duration("D", 0)
	return c, r.err
}

// raftlogResult is one store's write run on one node role in one round.
type raftlogResult struct{ rate, p99 float64 }

// raftlogTable prints one row per role and round: both stores' rate and
// p99 and wal's ratios to bolt.
func raftlogTable(w io.Writer, runs int, res map[string]raftlogResult) {
	fmt.Fprint(w, "| round | node | bolt PUT/s | bolt p99 ms | wal PUT/s | wal p99 ms | wal/bolt PUT/s | wal/bolt p99 |\n|---|---|---|---|---|---|---|---|\n")
	for _, role := range []string{"leader", "follower"} {
		for round := 1; round <= runs; round++ {
			b, wl := res[fmt.Sprintf("bolt-%s-%d", role, round)], res[fmt.Sprintf("wal-%s-%d", role, round)]
			fmt.Fprintf(w, "| %d | %s | %.0f | %.1f | %.0f | %.1f | x%.2f | x%.2f |\n", round, role, b.rate, b.p99, wl.rate, wl.p99, wl.rate/b.rate, wl.p99/b.p99)
		}
	}
}

// RaftlogAB is scripts/raftlog-ab.sh.
func RaftlogAB(ctx context.Context, e Env, args []string) error {
	if done, err := envOnly(e, args, raftlogUsage); done || err != nil {
		return err
	}
	c, err := parseRaftlogEnv(e.Getenv)
	if err != nil {
		return err
	}
	if c.outDir, err = outputDir(c.outDir, "raftlog-ab."); err != nil {
		return err
	}
	kb, err := buildKvbench(ctx, e.Repo, c.outDir)
	if err != nil {
		return err
	}
	res := map[string]raftlogResult{}
	for round := 1; round <= c.runs; round++ {
		for _, store := range []string{"bolt", "wal"} {
			if err := raftlogRound(ctx, e, c, kb, round, store, res); err != nil {
				return err
			}
		}
	}
	raftlogTable(e.Out, c.runs, res)
	fmt.Fprintf(e.Err, "raw kvbench JSON: %s\n", c.outDir)
	return nil
}

func raftlogRound(ctx context.Context, e Env, c raftlogConfig, kb *kvbench, round int, store string, res map[string]raftlogResult) error {
	dir, err := mkdirTemp("raftlog-ab-cluster.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var log strings.Builder
	cl, err := startCluster(e, dir, c.httpBase, c.peerBase, []string{"KV_RAFT_LOG=" + store}, &log)
	_ = os.WriteFile(filepath.Join(c.outDir, fmt.Sprintf("start-%s-%d.log", store, round)), []byte(log.String()), 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Stop() }()
	key, err := cl.APIKey()
	if err != nil {
		return err
	}
	kb.env = append(os.Environ(), "KV_API_KEY="+key)
	nodes := map[string]int{}
	for n := 1; n <= 3; n++ {
		st, err := clusterNodeState(ctx, cl, n)
		if err != nil {
			return err
		}
		if st.RaftLog != store {
			return fmt.Errorf("node %d does not run %s: raftLog %q", n, store, st.RaftLog)
		}
		if st.State == "Leader" {
			nodes["leader"] = n
		} else {
			nodes["follower"] = n
		}
	}
	for _, role := range []string{"leader", "follower"} {
		name := fmt.Sprintf("%s-%s-%d", store, role, round)
		r, err := kb.run(ctx, filepath.Join(c.outDir, name+".json"), "-endpoints", cl.URL(nodes[role]),
			"-workload", "write", "-c", strconv.Itoa(c.conns), "-d", c.dur, "-warmup", "2s")
		if err != nil {
			return err
		}
		res[name] = raftlogResult{rate: r.Total.Rate, p99: r.Total.Latency.P99}
	}
	return nil
}
