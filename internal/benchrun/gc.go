package benchrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const gcUsage = `gc-p99.sh - write tail latency and memory at a large data set under several
garbage-collector settings, measured on one cluster in alternation.

  scripts/gc-p99.sh                                   # defaults below
  SETTINGS="default: floor50:KV_GC_MIN_PERCENT=50 go:GOGC=100" KEYS=1000000 scripts/gc-p99.sh
  BINS="old=/tmp/kvnode-old" SETTINGS="before@old: after:" scripts/gc-p99.sh

Starts a three-node cluster of this tree (internal/devcluster; KV_CLUSTER_DIR,
KV_CLUSTER_HTTP_BASE, KV_CLUSTER_PEER_BASE as cluster.sh; default a temporary
directory and ports 18381-18383 / 19381-19383), preloads KEYS keys of
200-byte values (default 1,000,000), then ROUNDS times (default 2) for each
setting in SETTINGS: restarts all three nodes with that setting's
environment, and runs the snapshot-p99.sh windows for SECS seconds (default 40)
at RATE PUT/s open loop (default 1000), which reports the p99 of 2 s windows
with no snapshot running. A setting is LABEL[@BIN]:ENV=V,ENV=V (no spaces);
BIN names a binary in BINS (LABEL=PATH) to run instead of this tree's kvnode.
Prints per window class the median p99, the leader's GC cycles during the
windows and its GOGC, and every node's RSS at the end; one table at the end.
KV_CLUSTER_TIMEOUT defaults to 120 here.
`

// gcSetting is one entry of SETTINGS.
type gcSetting struct {
	label, bin string   // bin: a BINS label, "" for this tree's kvnode
	env        []string // ENV=V
	envText    string   // as written, for the table
}

func parseGCSettings(settings, bins string) ([]gcSetting, map[string]string, error) {
	binMap := map[string]string{}
	for _, b := range strings.Fields(bins) {
		l, p, ok := strings.Cut(b, "=")
		if !ok || l == "" || p == "" {
			return nil, nil, fmt.Errorf("%w: BINS: %q is not LABEL=PATH", errUsage, b)
		}
		binMap[l] = p
	}
	var out []gcSetting
	for _, s := range strings.Fields(settings) {
		label, envs, ok := strings.Cut(s, ":")
		if !ok || label == "" {
			return nil, nil, fmt.Errorf("%w: SETTINGS: %q is not LABEL[@BIN]:ENV=V,...", errUsage, s)
		}
		g := gcSetting{label: label, envText: envs}
		if i := strings.Index(label, "@"); i >= 0 {
			g.bin = label[i+1:]
			if _, ok := binMap[g.bin]; !ok {
				return nil, nil, fmt.Errorf("%w: setting %s: no binary %s in BINS", errUsage, label, g.bin)
			}
		}
		for _, kv := range strings.Split(envs, ",") {
			if kv == "" {
				continue
			}
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return nil, nil, fmt.Errorf("%w: setting %s: %q is not ENV=V", errUsage, label, kv)
			}
			g.env = append(g.env, kv)
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: SETTINGS is empty", errUsage)
	}
	return out, binMap, nil
}

// gcRow is one table row.
type gcRow struct {
	round         int
	s             gcSetting
	none, windows string // from the "none:" summary; "" when no such window
	gcCycles      int64
	gogc          string
	rss           string
}

func gcTable(w io.Writer, keys int, rate string, secs int, rows []gcRow) {
	fmt.Fprintf(w, "Write p99 at %d keys, open loop %s PUT/s on the leader, 2 s windows for %d s per setting and round.\n\n", keys, rate, secs)
	fmt.Fprintln(w, "| round | setting | environment | p99 ms, median of windows without a snapshot (windows) | leader GC cycles | leader GOGC at end | RSS MiB n1/n2/n3 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		env, none, win := r.s.envText, r.none, r.windows
		if env == "" {
			env = "-"
		}
		if none == "" {
			none = "n/a"
		}
		if win == "" {
			win = "0"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s (%s) | %d | %s | %s |\n", r.round, r.s.label, env, none, win, r.gcCycles, r.gogc, r.rss)
	}
}

// snapshotSummary picks the "none:" line's median and window count, and
// all class lines joined with ';'.
func snapshotSummary(out string) (none, windows, all string) {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || (f[0] != "none:" && f[0] != "leader:" && f[0] != "follower:") {
			continue
		}
		lines = append(lines, l)
		if f[0] == "none:" && len(f) >= 6 {
			none, windows = f[5], f[1]
		}
	}
	return none, windows, strings.Join(lines, ";")
}

// GCP99 is scripts/gc-p99.sh.
func GCP99(ctx context.Context, e Env, args []string) error {
	if done, err := envOnly(e, args, gcUsage); done || err != nil {
		return err
	}
	r := &envReader{getenv: e.Getenv}
	keys, rounds, secs := r.int("KEYS", 1000000, 1), r.int("ROUNDS", 2, 1), r.int("SECS", 40, 1)
	rate := r.str("RATE", "1000")
	r.float("RATE", 0, 1e-9, 1e12)
	if r.err != nil {
		return r.err
	}
	settings, bins, err := parseGCSettings(r.str("SETTINGS", "default: gogc100:GOGC=100"), e.Getenv("BINS"))
	if err != nil {
		return err
	}
	work, err := mkdirTemp("gc-p99-work.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := e.Getenv("KV_CLUSTER_DIR")
	if dir == "" {
		if dir, err = mkdirTemp("gc-p99."); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	defaults := map[string]string{"KV_CLUSTER_DIR": dir, "KV_CLUSTER_HTTP_BASE": "18380", "KV_CLUSTER_PEER_BASE": "19380", "KV_CLUSTER_TIMEOUT": "120"}
	cfg, err := devcluster.FromEnv(func(k string) string {
		if v := e.Getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}, e.Repo)
	if err != nil {
		return err
	}
	var log strings.Builder
	cfg.Out, cfg.Err = &log, &log
	baseEnv := cfg.Env
	cl, err := devcluster.Open(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Stop() }()
	kb, err := buildKvbench(ctx, e.Repo, work)
	if err != nil {
		return err
	}
	if err := cl.Start(false); err != nil {
		fmt.Fprint(e.Err, log.String())
		return fmt.Errorf("cluster did not start: %w", err)
	}
	this := filepath.Join(work, "kvnode-this")
	if err := copyFile(filepath.Join(cl.Dir(), "bin", "kvnode"), this); err != nil {
		return err
	}
	key, err := cl.APIKey()
	if err != nil {
		return err
	}
	metric := func(n int, name string) float64 {
		b, _ := getBody(ctx, cl.URL(n)+"/metrics", key, 5*time.Second)
		v, _ := metricValue(string(b), name)
		return v
	}
	leader := func() (int, error) { n, _, err := leaderOf(cl); return n, err }
	keyFile := filepath.Join(cl.Dir(), "api-key")
	ln, err := leader()
	if err != nil {
		return err
	}
	e.logf("preloading %d keys", keys)
	if _, err := kb.run(ctx, "", "-endpoints", cl.URL(ln), "-api-key-file", keyFile, "-keys", strconv.Itoa(keys),
		"-preload-only", "-preload-c", "64"); err != nil {
		return fmt.Errorf("preload failed: %w", err)
	}
	var rows []gcRow
	for round := 1; round <= rounds; round++ {
		for _, s := range settings {
			bin := this
			if s.bin != "" {
				bin = bins[s.bin]
			}
			target := filepath.Join(cl.Dir(), "bin", "kvnode")
			if err := copyFile(bin, target+".new"); err != nil {
				return err
			}
			if err := os.Rename(target+".new", target); err != nil {
				return err
			}
			envText := s.envText
			if envText == "" {
				envText = "no environment"
			}
			e.logf("round %d: %s (%s): restarting the nodes", round, s.label, envText)
			scfg := cfg
			scfg.Env = append(append([]string(nil), baseEnv...), s.env...)
			var rlog strings.Builder
			scfg.Out, scfg.Err = &rlog, &rlog
			sc, err := devcluster.Open(scfg)
			if err != nil {
				return err
			}
			for n := 1; n <= 3; n++ {
				if err := sc.Restart(n); err != nil {
					fmt.Fprint(e.Err, rlog.String())
					return fmt.Errorf("restart of n%d failed: %w", n, err)
				}
			}
			if ln, err = leader(); err != nil {
				return err
			}
			gc0 := metric(ln, "go_gc_duration_seconds_count")
			var out strings.Builder
			if err := snapshotP99(ctx, &out, kb, cl, time.Duration(secs)*time.Second, rate); err != nil {
				return err
			}
			gc1 := metric(ln, "go_gc_duration_seconds_count")
			var rss []string
			for n := 1; n <= 3; n++ {
				rss = append(rss, strconv.FormatInt(int64(metric(n, "process_resident_memory_bytes"))>>20, 10))
			}
			row := gcRow{round: round, s: s, gcCycles: int64(gc1) - int64(gc0), gogc: fmt.Sprintf("%.0f", metric(ln, "go_gc_gogc_percent")), rss: strings.Join(rss, "/")}
			var all string
			row.none, row.windows, all = snapshotSummary(out.String())
			e.logf("  %s; leader GC cycles %d, GOGC %s, RSS MiB %s", all, row.gcCycles, row.gogc, row.rss)
			rows = append(rows, row)
		}
	}
	gcTable(e.Out, keys, rate, secs, rows)
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
