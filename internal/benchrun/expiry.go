package benchrun

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const expiryUsage = `bench-expiry.sh measures mass expiry: how long a three-node
cluster takes to physically remove EXP_KEYS keys that expire in the same
second, and what that does to the latency of writes to other keys.
Everything it starts, it stops (also on SIGINT/SIGTERM).

Usage: scripts/bench-expiry.sh

  1. builds kvbench and starts a fresh cluster (internal/devcluster) in a
     temporary state directory (HTTP on EXP_HTTP_BASE+1..3, peers on
     EXP_PEER_BASE+1..3)
  2. preloads EXP_LOAD_KEYS keys "load-NNNNN" (TTL 1 h): the key space of
     the write load, so the load never changes the number of keys
  3. picks an expiry instant T (EXP_LEAD seconds ahead) and preloads
     EXP_KEYS keys in chunks of EXP_CHUNK ("exp-CCC-NNNNN"); each chunk gets
     ttlSeconds = T - (chunk start), so every key expires in [T, T + the
     longest chunk's duration]; the spread is printed
  4. runs an open-loop write load (kvbench -workload write -rate EXP_RATE
     -c 64, on the leader) in three back-to-back windows of EXP_WINDOW
     seconds (each after a 1 s warmup): "before" ends 1.5 s before T,
     "expiry" starts 0.5 s before T, "after" follows it; prints each
     window's p50/p99/p99.9 and the expiry window's p99 over the before and
     after windows' (the machine is shared: a ratio far below 1 means the
     baseline window was disturbed, so both are shown)
  5. from T on, polls /metrics of every node (quorumkv_fsm_keys,
     quorumkv_fsm_value_bytes, quorumkv_expirations_applied_total) every
     50 ms and prints, per node, the time after T at which its state machine
     held no expiring key any more (keys back to EXP_LOAD_KEYS)

Environment: EXP_KEYS (100000), EXP_CHUNK (1000), EXP_LOAD_KEYS (10000),
EXP_RATE (1000), EXP_WINDOW (5), EXP_LEAD (seconds from the start of the
expiring preload to T; default: twice its duration estimated from the rate
of the load-key preload, + 20), EXP_RUNS (1: repetitions,
each on a fresh cluster), EXP_HTTP_BASE (38080), EXP_PEER_BASE (39080),
EXP_SNAPSHOT_THRESHOLD (1000000: the nodes' --snapshot-threshold, so that no
snapshot, which stalls writes by itself, falls into a window; the report
counts the snapshots taken in each window anyway), EXP_KEEP=1 keeps the work
directory. KV_* settings pass through to kvnode.
The default ports stay clear of cluster.sh's (8081-8083, 9081-9083) and
bench.sh's (18181-18183, 19181-19183).
`

type expiryConfig struct {
	keys, chunk, loadKeys, window, lead, runs int // lead 0: estimate
	rate                                      string
	httpBase, peerBase                        int
	snapshotThreshold                         string
	keep                                      bool
}

func parseExpiryEnv(getenv func(string) string) (expiryConfig, error) {
	r := &envReader{getenv: getenv}
	c := expiryConfig{
		keys: r.int("EXP_KEYS", 100000, 1), chunk: r.int("EXP_CHUNK", 1000, 1), loadKeys: r.int("EXP_LOAD_KEYS", 10000, 1),
		window: r.int("EXP_WINDOW", 5, 1), lead: r.int("EXP_LEAD", 0, 1), runs: r.int("EXP_RUNS", 1, 1),
		httpBase: r.int("EXP_HTTP_BASE", 38080, 1), peerBase: r.int("EXP_PEER_BASE", 39080, 1),
		rate: r.str("EXP_RATE", "1000"), snapshotThreshold: r.str("EXP_SNAPSHOT_THRESHOLD", "1000000"),
		keep: getenv("EXP_KEEP") == "1",
	}
	if r.float("EXP_RATE", 1000, 1e-9, math.MaxFloat64); r.err == nil {
		r.int("EXP_SNAPSHOT_THRESHOLD", 0, 1)
	}
	if c.httpBase > 65525 || c.peerBase > 65525 {
		r.fail(fmt.Errorf("EXP_HTTP_BASE and EXP_PEER_BASE must be port numbers up to 65525"))
	}
	return c, r.err
}

// expiryLead is the default EXP_LEAD: twice the expiring preload's duration
// estimated from the load-key preload's rate, plus 20 s, in whole seconds.
func expiryLead(keys int, preloadRate float64) int {
	return ceil(2*float64(keys)/preloadRate + 20)
}

// chunkSizes splits keys into chunks of chunk keys, the last one smaller.
func chunkSizes(keys, chunk int) []int {
	var s []int
	for left := keys; left > 0; left -= chunk {
		s = append(s, min(chunk, left))
	}
	return s
}

// loadWindow is one measured window of the write load.
type loadWindow struct {
	p50, p99, p999 float64
	rate           int64
	errors         uint64
	snapshots      int64
}

// removal is when node n held no expiring key any more (secs after T).
type removal struct {
	node            int
	secs            float64
	timeout         bool
	applied, vbytes float64
}

func expiryReport(w io.Writer, run int, c expiryConfig, spread float64, leaderID string, before, during, after loadWindow, rm []removal) {
	fmt.Fprintf(w, "run %d: %d keys expiring at T (spread %.2fs), load %s req/s open loop c64 on the leader (%s)\n",
		run, c.keys, spread, c.rate, leaderID)
	for _, x := range []struct {
		name string
		w    loadWindow
	}{{"before window:", before}, {"expiry window:", during}, {"after window:", after}} {
		fmt.Fprintf(w, "  write %-14s p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  (%d req/s, %d errors, %d snapshots)\n",
			x.name, x.w.p50, x.w.p99, x.w.p999, x.w.rate, x.w.errors, x.w.snapshots)
	}
	fmt.Fprintf(w, "  p99 ratio expiry/before: %.2f  expiry/after: %.2f\n", during.p99/before.p99, during.p99/after.p99)
	for _, r := range rm {
		if r.timeout {
			fmt.Fprintf(w, "  n%d: expiring keys still present 60 s after T\n", r.node)
			continue
		}
		fmt.Fprintf(w, "  n%d: no expiring key left at T+%.3fs, T+%.3fs after the last expiry (applied expirations %.0f, value bytes %.0f)\n",
			r.node, r.secs, r.secs-spread, r.applied, r.vbytes)
	}
}

type expiry struct {
	e    Env
	c    expiryConfig
	work string
	kb   *kvbench
	cl   *devcluster.Cluster
	key  string
}

// BenchExpiry is scripts/bench-expiry.sh.
func BenchExpiry(ctx context.Context, e Env, args []string) error {
	if done, err := envOnly(e, args, expiryUsage); done || err != nil {
		return err
	}
	c, err := parseExpiryEnv(e.Getenv)
	if err != nil {
		return err
	}
	x := &expiry{e: e, c: c}
	if x.work, err = os.MkdirTemp("", "quorumkv-bench-expiry."); err != nil {
		return err
	}
	defer func() {
		if c.keep {
			e.logf("work directory kept: %s", x.work)
		} else {
			os.RemoveAll(x.work)
		}
	}()
	e.logf("building kvbench")
	if x.kb, err = buildKvbench(ctx, e.Repo, x.work); err != nil {
		return err
	}
	for run := 1; run <= c.runs; run++ {
		if err := x.oneRun(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

func (x *expiry) metrics(ctx context.Context, n int) (string, error) {
	b, err := getBody(ctx, x.cl.URL(n)+"/metrics", x.key, time.Second)
	return string(b), err
}

func (x *expiry) metric(ctx context.Context, n int, name string) float64 {
	text, _ := x.metrics(ctx, n)
	v, _ := metricValue(text, name)
	return v
}

func (x *expiry) snapshots(ctx context.Context) int64 {
	var s float64
	for n := 1; n <= 3; n++ {
		text, _ := x.metrics(ctx, n)
		s += metricSum(text, "quorumkv_snapshots_total")
	}
	return int64(s)
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

func (x *expiry) window(ctx context.Context, name, leaderURL string) (loadWindow, error) {
	s0 := x.snapshots(ctx)
	r, err := x.kb.run(ctx, filepath.Join(x.work, name+".json"), "-endpoints", leaderURL, "-workload", "write",
		"-key-prefix", "load-", "-keys", strconv.Itoa(x.c.loadKeys), "-value-size", "200", "-ttl", "3600",
		"-rate", x.c.rate, "-c", "64", "-warmup", "1s", "-d", strconv.Itoa(x.c.window)+"s")
	if err != nil {
		return loadWindow{}, fmt.Errorf("kvbench %s failed: %w", name, err)
	}
	return loadWindow{p50: r.Total.Latency.P50, p99: r.Total.Latency.P99, p999: r.Total.Latency.P999,
		rate: int64(r.Total.Rate), errors: r.Total.Errors, snapshots: x.snapshots(ctx) - s0}, nil
}

// pollRemoval reports, per node in the order they get there, when its state
// machine holds at most the load keys again; it gives up 60 s after T.
func (x *expiry) pollRemoval(ctx context.Context, t time.Time) []removal {
	var done []removal
	pending := []int{1, 2, 3}
	for len(pending) > 0 {
		var left []int
		for _, n := range pending {
			text, err := x.metrics(ctx, n)
			if k, ok := metricValue(text, "quorumkv_fsm_keys"); err == nil && ok && k <= float64(x.c.loadKeys) {
				done = append(done, removal{node: n, secs: math.Round(time.Since(t).Seconds()*1000) / 1000})
			} else {
				left = append(left, n)
			}
		}
		pending = left
		if time.Since(t) > 60*time.Second || ctx.Err() != nil {
			for _, n := range pending {
				done = append(done, removal{node: n, timeout: true})
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return done
}

func (x *expiry) oneRun(ctx context.Context, run int) error {
	c := x.c
	dir := filepath.Join(x.work, "cluster")
	x.e.logf("run %d: starting a three-node cluster in %s (HTTP %d-%d)", run, dir, c.httpBase+1, c.httpBase+3)
	os.RemoveAll(dir)
	var startLog strings.Builder
	var err error
	if x.cl, err = startCluster(x.e, dir, c.httpBase, c.peerBase, []string{"KV_SNAPSHOT_THRESHOLD=" + c.snapshotThreshold}, &startLog); err != nil {
		return err
	}
	defer func() {
		if err := x.cl.Stop(); err != nil {
			x.e.logf("stopping the cluster: %v", err)
		}
	}()
	if x.key, err = x.cl.APIKey(); err != nil {
		return err
	}
	x.kb.env = append(os.Environ(), "KV_API_KEY="+x.key)
	leaderN, leaderID, err := leaderOf(x.cl)
	if err != nil {
		return err
	}
	leaderURL := x.cl.URL(leaderN)

	x.e.logf("preloading %d load keys", c.loadKeys)
	pre, err := x.kb.run(ctx, filepath.Join(x.work, fmt.Sprintf("preload-%d.json", run)), "-endpoints", leaderURL,
		"-workload", "write", "-key-prefix", "load-", "-keys", strconv.Itoa(c.loadKeys), "-value-size", "200",
		"-ttl", "3600", "-preload-only", "-preload-c", "64")
	if err != nil {
		return fmt.Errorf("load preload failed: %w", err)
	}
	lead := c.lead
	if lead == 0 {
		if pre.Preload == nil || pre.Preload.Rate <= 0 {
			return fmt.Errorf("the load preload reported no rate; set EXP_LEAD")
		}
		lead = expiryLead(c.keys, pre.Preload.Rate)
	}
	tExp := time.Unix(time.Now().Unix()+int64(lead), 0)
	chunks := chunkSizes(c.keys, c.chunk)
	x.e.logf("preloading %d expiring keys in %d chunks, all expiring at %s", c.keys, len(chunks), tExp.Format("15:04:05"))
	var spread float64
	for i, n := range chunks {
		t0 := time.Now()
		ttl := tExp.Sub(t0).Seconds()
		if ttl <= 12 {
			return fmt.Errorf("preload too slow: raise EXP_LEAD (chunk %d of %d at T-%.3fs)", i, len(chunks), ttl)
		}
		if _, err := x.kb.run(ctx, "", "-endpoints", leaderURL, "-workload", "write", "-key-prefix", fmt.Sprintf("exp-%03d-", i),
			"-keys", strconv.Itoa(n), "-value-size", "200", "-ttl", fmt.Sprintf("%.3f", ttl), "-preload-only", "-preload-c", "64"); err != nil {
			return fmt.Errorf("expiring preload chunk %d failed: %w", i, err)
		}
		spread = max(spread, math.Round(time.Since(t0).Seconds()*1000)/1000)
	}
	x.e.logf("expiring keys preloaded; expiry instants span [T, T+%.3fs]; T is in %.3fs", spread, time.Until(tExp).Seconds())
	x.e.logf("leader holds %.0f keys", x.metric(ctx, leaderN, "quorumkv_fsm_keys"))

	// Measured windows: before [T-1.5-window, T-1.5], expiry [T-0.5, T-0.5+window], after it.
	win := time.Duration(c.window) * time.Second
	if err := sleepUntil(ctx, tExp.Add(-win-time.Second-1500*time.Millisecond)); err != nil {
		return err
	}
	x.e.logf("before window")
	before, err := x.window(ctx, fmt.Sprintf("run%d-before", run), leaderURL)
	if err != nil {
		return err
	}
	if err := sleepUntil(ctx, tExp.Add(-1500*time.Millisecond)); err != nil {
		return err
	}
	removed := make(chan []removal, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() { removed <- x.pollRemoval(pollCtx, tExp) }()
	x.e.logf("expiry window")
	during, err := x.window(ctx, fmt.Sprintf("run%d-expiry", run), leaderURL)
	if err != nil {
		return err
	}
	x.e.logf("after window")
	after, err := x.window(ctx, fmt.Sprintf("run%d-after", run), leaderURL)
	if err != nil {
		return err
	}
	rm := <-removed
	for i := range rm {
		if !rm[i].timeout {
			rm[i].applied = x.metric(ctx, rm[i].node, "quorumkv_expirations_applied_total")
			rm[i].vbytes = x.metric(ctx, rm[i].node, "quorumkv_fsm_value_bytes")
		}
	}
	expiryReport(x.e.Out, run, c, spread, leaderID, before, during, after, rm)
	return nil
}
