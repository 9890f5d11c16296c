package benchrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const benchUsage = `bench.sh measures quorumkv on this machine and regenerates the results
section of BENCHMARKS.md. Everything it starts, it stops (also on SIGINT and
SIGTERM), and it leaves no state behind except the raw results it names at
the end.

Usage: scripts/bench.sh [--compare-etcd] [--memory-keys N] [--no-write] [--quick]

  1. builds kvbench, starts a fresh three-node cluster (internal/devcluster)
     in a temporary state directory (HTTP on BENCH_HTTP_BASE+1..3, peers on
     BENCH_PEER_BASE+1..3), preloads BENCH_KEYS keys of 200-byte values
  2. closed-loop kvbench runs on the leader and on one follower, at every
     concurrency in BENCH_CONNS: write (PUT with TTL), read (linearizable GET),
     read with ?consistency=stale, session (90/10) and counter (incr) once
  3. RSS of every node, and the restart time of a follower: SIGKILL, start
     on the same data, until it answers a linearizable GET of a preloaded key
  4. --memory-keys N: preloads N more keys and measures RSS and restart time
     again (the 1,000,000-key target: --memory-keys 1000000), then
     write p99 in 2 s open-loop windows with and without a raft snapshot
     running (as scripts/snapshot-p99.sh, BENCH_SNAP_SECONDS (120) at
     BENCH_SNAP_RATE (1000) writes/s)
  5. --compare-etcd: installs etcd from Debian's packages when missing, starts
     a local three-member etcd (client ports BENCH_ETCD_BASE+1..3, peer ports
     BENCH_ETCD_BASE+11..13) beside the cluster, and right after each write,
     read and stale-read row runs the same kvbench load through etcd's v3
     JSON gateway (-target etcd: put, linearizable and serializable range);
     every such quorumkv row carries the ratio to its etcd row
  6. writes the results between the markers in BENCHMARKS.md (unless
     --no-write) and prints them

Environment: BENCH_DUR (10s), BENCH_WARMUP (2s), BENCH_CONNS ("16 64"),
BENCH_KEYS (10000), BENCH_HTTP_BASE (18180), BENCH_PEER_BASE (19180),
BENCH_ETCD_BASE (24780), BENCH_KEEP=1 keeps the work directory.
--quick is BENCH_DUR=3s BENCH_WARMUP=1s BENCH_CONNS=16 (for trying the script).
The ports default away from 23791-23803 and 26379+ (the shared peer harness)
and from cluster.sh's defaults (8081-8083, 9081-9083).
`

type benchConfig struct {
	compareEtcd, write, keep     bool
	memoryKeys                   int
	dur, warmup                  string
	conns                        []int
	keys                         int
	httpBase, peerBase, etcdBase int
	snapSeconds, snapRate        string
}

func parseBenchArgs(args []string, getenv func(string) string) (benchConfig, bool, error) {
	c := benchConfig{write: true}
	quick := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--compare-etcd":
			c.compareEtcd = true
		case "--memory-keys":
			i++
			n, err := -1, error(nil)
			if i < len(args) {
				n, err = strconv.Atoi(args[i])
			}
			if err != nil || n < 0 || i >= len(args) || strings.ContainsAny(args[i], "+-") {
				return c, false, fmt.Errorf("%w: --memory-keys needs a number", errUsage)
			}
			c.memoryKeys = n
		case "--no-write":
			c.write = false
		case "--quick":
			quick = true
		case "-h", "--help":
			return c, true, nil
		default:
			return c, false, fmt.Errorf("%w: unknown argument '%s' (see --help)", errUsage, args[i])
		}
	}
	r := &envReader{getenv: getenv}
	def := func(quickV, normal string) string {
		if quick {
			return quickV
		}
		return normal
	}
	c.dur, c.warmup = r.str("BENCH_DUR", def("3s", "10s")), r.str("BENCH_WARMUP", def("1s", "2s"))
	r.duration("BENCH_DUR", 0)
	r.duration("BENCH_WARMUP", 0)
	for _, f := range strings.Fields(r.str("BENCH_CONNS", def("16", "16 64"))) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			r.fail(fmt.Errorf("BENCH_CONNS must be whole numbers >= 1, got %q", f))
		}
		c.conns = append(c.conns, n)
	}
	if len(c.conns) == 0 {
		r.fail(fmt.Errorf("BENCH_CONNS is empty"))
	}
	c.keys = r.int("BENCH_KEYS", 10000, 1)
	c.httpBase, c.peerBase, c.etcdBase = r.int("BENCH_HTTP_BASE", 18180, 1), r.int("BENCH_PEER_BASE", 19180, 1), r.int("BENCH_ETCD_BASE", 24780, 1)
	c.keep = getenv("BENCH_KEEP") == "1"
	c.snapSeconds, c.snapRate = r.str("BENCH_SNAP_SECONDS", "120"), r.str("BENCH_SNAP_RATE", "1000")
	r.int("BENCH_SNAP_SECONDS", 0, 1)
	r.float("BENCH_SNAP_RATE", 0, 1e-9, math.MaxFloat64)
	return c, false, r.err
}

// benchRow is one row of the throughput table.
type benchRow struct {
	system, workload, node string
	conns                  int
	rps                    int64
	p50, p99, p999         float64
	errors                 uint64
	ratio                  string // vs etcd: "×1.23", "n/a" or "" (-)
	cpu                    string
}

// jqNum prints x rounded to 2 decimals the way the report always has (no
// trailing zeros: 1.8, 2).
func jqNum(x float64) string { return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64) }

func (r benchRow) String() string {
	ratio := r.ratio
	if ratio == "" {
		ratio = "-"
	}
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %s | %s | %s | %d | %s | %s |", r.system, r.workload, r.node, r.conns,
		r.rps, jqNum(r.p50), jqNum(r.p99), jqNum(r.p999), r.errors, ratio, r.cpu)
}

// etcdRatio is quorumkv's req/s over etcd's, as the table shows it.
func etcdRatio(rps, ref int64) string {
	if ref <= 0 {
		return "×n/a"
	}
	return fmt.Sprintf("×%.2f", float64(rps)/float64(ref))
}

// cpuSample is the machine's busy, idle and steal jiffies (/proc/stat).
type cpuSample struct{ busy, idle, steal int64 }

func parseCPUSample(stat string) cpuSample {
	for _, l := range strings.Split(stat, "\n") {
		f := strings.Fields(l)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		v := make([]int64, 9)
		for i := 1; i < 9; i++ {
			v[i], _ = strconv.ParseInt(f[i], 10, 64)
		}
		return cpuSample{busy: v[1] + v[2] + v[3] + v[6] + v[7], idle: v[4] + v[5], steal: v[8]}
	}
	return cpuSample{}
}

func readCPUSample() cpuSample {
	b, _ := os.ReadFile("/proc/stat")
	return parseCPUSample(string(b))
}

func cpuDelta(a, b cpuSample) string {
	t := (b.busy - a.busy) + (b.idle - a.idle) + (b.steal - a.steal)
	if t <= 0 {
		t = 1
	}
	return fmt.Sprintf("cpu %d%%, steal %d%%", 100*(b.busy-a.busy)/t, 100*(b.steal-a.steal)/t)
}

// keyName is kvbench's name for key i of a keys-key space (zero-padded to
// at least 5 digits, more when keys-1 has more).
func keyName(prefix string, keys, i int) string {
	w := max(5, len(strconv.Itoa(keys-1)))
	return fmt.Sprintf("%s%0*d", prefix, w, i)
}

// rssText formats /proc/PID/status: "RSS MB (anon A + file F)"; file pages
// are bbolt's mmap of the raft log.
func rssText(status string) string {
	var rss, anon, file float64
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "RssAnon:":
			anon = v
		case "RssFile:":
			file = v
		}
	}
	return fmt.Sprintf("%.0f MB (anon %.0f + file %.0f)", rss/1024, anon/1024, file/1024)
}

// replaceBetween puts body between the lines begin and end of doc.
func replaceBetween(doc, begin, end, body string) (string, error) {
	lines := strings.SplitAfter(doc, "\n")
	var out strings.Builder
	state := 0
	for _, l := range lines {
		t := strings.TrimRight(l, "\n")
		switch {
		case state == 0 && t == begin:
			out.WriteString(l)
			out.WriteString(body)
			state = 1
		case state == 1 && t == end:
			out.WriteString(l)
			state = 2
		case state == 1:
		default:
			out.WriteString(l)
		}
	}
	if state != 2 {
		return "", fmt.Errorf("BENCHMARKS.md lacks the result markers")
	}
	return out.String(), nil
}

type benchRun struct {
	e        Env
	c        benchConfig
	work     string
	jsonDir  string
	kb       *kvbench
	cl       *devcluster.Cluster
	key      string
	rows     []benchRow
	notes    []string
	etcdRPS  map[string]int64
	etcd     *etcdCluster
	clusterU bool
}

// Bench is scripts/bench.sh.
func Bench(ctx context.Context, e Env, args []string) error {
	c, help, err := parseBenchArgs(args, e.Getenv)
	if help {
		fmt.Fprint(e.Out, benchUsage)
		return nil
	}
	if err != nil {
		return err
	}
	if c.compareEtcd {
		if _, err := exec.LookPath("etcd"); err != nil {
			if err := aptInstall(e, "etcd-server", "etcd-client"); err != nil {
				return err
			}
		}
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	b := &benchRun{e: e, c: c, etcdRPS: map[string]int64{},
		jsonDir: filepath.Join(os.TempDir(), "quorumkv-bench-results-"+stamp, "json")}
	if b.work, err = os.MkdirTemp("", "quorumkv-bench."); err != nil {
		return err
	}
	if err := os.MkdirAll(b.jsonDir, 0o755); err != nil {
		return err
	}
	defer func() {
		if b.etcd != nil {
			b.etcd.stop()
		}
		if b.clusterU {
			_ = b.cl.Stop()
		}
		if c.keep {
			e.logf("work directory kept: %s", b.work)
		} else {
			os.RemoveAll(b.work)
		}
	}()
	e.logf("building kvbench")
	if b.kb, err = buildKvbench(ctx, e.Repo, b.work); err != nil {
		return err
	}
	report, err := b.run(ctx)
	if err != nil {
		return err
	}
	if c.write {
		path := filepath.Join(e.Repo, "BENCHMARKS.md")
		doc, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		updated, err := replaceBetween(string(doc), "<!-- bench.sh results: begin -->", "<!-- bench.sh results: end -->", report)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
			return err
		}
		e.logf("updated BENCHMARKS.md")
	}
	fmt.Fprint(e.Out, report)
	return nil
}

func aptInstall(e Env, pkgs ...string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing %s: install them (no apt-get here)", strings.Join(pkgs, " "))
	}
	e.logf("installing %s with apt-get", strings.Join(pkgs, " "))
	sudo := []string{}
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	for _, argv := range [][]string{append(sudo, "apt-get", "update", "-qq"),
		append(sudo, append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"}, pkgs...)...)} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return nil
}

// bench runs one row's load and returns the row's figures.
func (b *benchRun) bench(ctx context.Context, name string, args ...string) (benchRow, error) {
	c0 := readCPUSample()
	r, err := b.kb.run(ctx, filepath.Join(b.jsonDir, name+".json"),
		append([]string{"-d", b.c.dur, "-warmup", b.c.warmup, "-keys", strconv.Itoa(b.c.keys)}, args...)...)
	if err != nil {
		return benchRow{}, fmt.Errorf("kvbench %s failed: %w", name, err)
	}
	row := benchRow{rps: int64(r.Total.Rate), p50: r.Total.Latency.P50, p99: r.Total.Latency.P99, p999: r.Total.Latency.P999,
		errors: r.Total.Errors, cpu: cpuDelta(c0, readCPUSample())}
	return row, nil
}

func (b *benchRun) addRow(row benchRow, system, workload, node string, conns int, errSummary string) {
	row.system, row.workload, row.node, row.conns = system, workload, node, conns
	b.rows = append(b.rows, row)
	b.e.logf("  %s %s %s c%d: %d req/s p50 %sms p99 %sms errors %d", system, workload, node, conns, row.rps, jqNum(row.p50), jqNum(row.p99), row.errors)
	if errSummary != "" {
		b.notes = append(b.notes, fmt.Sprintf("%s %s %s c%d errors: %s", system, workload, node, conns, errSummary))
	}
}

// errorSummary reads a row's saved report for its error list.
func (b *benchRun) errorSummary(name string) string {
	raw, err := os.ReadFile(filepath.Join(b.jsonDir, name+".json"))
	if err != nil {
		return ""
	}
	return errorSummaryOf(raw)
}

func (b *benchRun) nodeRSS() string {
	var parts []string
	for n := 1; n <= 3; n++ {
		pid, _ := b.cl.Pid(n)
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		parts = append(parts, fmt.Sprintf("n%d=%s", n, rssText(string(st))))
	}
	return strings.Join(parts, " ")
}

// restartTime SIGKILLs node n, starts it on its data, and times until it
// answers a linearizable GET of key with 200.
func (b *benchRun) restartTime(ctx context.Context, n int, key string) (string, error) {
	if err := b.cl.Kill(n); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := b.cl.Restart(n); err != nil {
		return "", err
	}
	for {
		if _, err := getBody(ctx, b.cl.URL(n)+"/kv/items/"+key, b.key, 2*time.Second); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Sprintf("%.2f", time.Since(t0).Seconds()), nil
}

func (b *benchRun) run(ctx context.Context) (string, error) {
	c := b.c
	dir := filepath.Join(b.work, "cluster")
	b.e.logf("starting a three-node cluster in %s (HTTP %d-%d)", dir, c.httpBase+1, c.httpBase+3)
	var clusterLog strings.Builder
	var err error
	if b.cl, err = startCluster(b.e, dir, c.httpBase, c.peerBase, nil, &clusterLog); err != nil {
		return "", err
	}
	b.clusterU = true
	if b.key, err = b.cl.APIKey(); err != nil {
		return "", err
	}
	b.kb.env = append(os.Environ(), "KV_API_KEY="+b.key)
	ln, _, err := leaderOf(b.cl)
	if err != nil {
		return "", err
	}
	fn := ln%3 + 1
	leaderURL, followerURL := b.cl.URL(ln), b.cl.URL(fn)
	b.notes = append(b.notes, fmt.Sprintf("quorumkv: leader n%d (%s), follower n%d (%s)", ln, leaderURL, fn, followerURL),
		"read (GET, stale) sends ?consistency=stale; a server without read levels ignores it and serves a linearizable read")

	b.e.logf("preloading %d keys", c.keys)
	pre, err := b.kb.run(ctx, filepath.Join(b.jsonDir, "preload.json"), "-endpoints", leaderURL, "-keys", strconv.Itoa(c.keys), "-preload-only")
	if err != nil {
		return "", err
	}
	if pre.Preload != nil {
		b.notes = append(b.notes, fmt.Sprintf("preload: %d keys in %ss (%d/s) through the leader, 32 workers",
			pre.Preload.Keys, strconv.FormatFloat(math.Round(pre.Preload.Seconds*10)/10, 'f', -1, 64), int64(pre.Preload.Rate)))
	}
	version := ""
	if c.compareEtcd {
		version = etcdVersion()
		b.e.logf("starting etcd %s, three members (client ports %d-%d)", version, c.etcdBase+1, c.etcdBase+3)
		if b.etcd, err = startEtcd(ctx, filepath.Join(b.work, "etcd"), c.etcdBase, "quorumkv-bench"); err != nil {
			return "", err
		}
		b.notes = append(b.notes, fmt.Sprintf("etcd %s: leader %s, follower %s; started by this script, fsync on (etcd's default), no TTL on puts (etcd needs leases)",
			version, b.etcd.leader, b.etcd.follower))
		if _, err := b.kb.run(ctx, filepath.Join(b.jsonDir, "etcd-preload.json"), "-target", "etcd", "-endpoints", b.etcd.leader,
			"-keys", strconv.Itoa(c.keys), "-preload-only"); err != nil {
			return "", err
		}
	}

	// Each quorumkv row is followed at once by the etcd row it is compared
	// with, so a change in the machine's background load hits both sides
	// of a ratio alike. The idle cluster of the other system keeps running.
	ops := []struct {
		op, label, elabel string
		args              []string
	}{
		{"write", "write (PUT, ttl)", "put", []string{"-workload", "write"}},
		{"read", "read (GET, linearizable)", "range (linearizable)", []string{"-workload", "read"}},
		{"stale", "read (GET, stale)", "range (serializable)", []string{"-workload", "read", "-consistency", "stale"}},
	}
	one := func(name, system, label, node string, conns int, args ...string) (benchRow, error) {
		row, err := b.bench(ctx, name, args...)
		if err == nil {
			b.addRow(row, system, label, node, conns, b.errorSummary(name))
		}
		return row, err
	}
	for _, conns := range c.conns {
		cs := strconv.Itoa(conns)
		for _, node := range []string{"leader", "follower"} {
			url, eurl := leaderURL, ""
			if b.etcd != nil {
				eurl = b.etcd.leader
			}
			if node == "follower" {
				url = followerURL
				if b.etcd != nil {
					eurl = b.etcd.follower
				}
			}
			for _, o := range ops {
				if _, err := one(fmt.Sprintf("kv-%s-%s-c%d", o.op, node, conns), "quorumkv", o.label, node, conns,
					append([]string{"-endpoints", url, "-c", cs}, o.args...)...); err != nil {
					return "", err
				}
				if c.compareEtcd {
					row, err := one(fmt.Sprintf("etcd-%s-%s-c%d", o.op, node, conns), "etcd "+version, o.elabel, node, conns,
						append([]string{"-target", "etcd", "-endpoints", eurl, "-c", cs}, o.args...)...)
					if err != nil {
						return "", err
					}
					b.etcdRPS[o.label+"|"+node+"|"+cs] = row.rps
				}
			}
			if _, err := one(fmt.Sprintf("kv-session-%s-c%d", node, conns), "quorumkv", "session (90/10)", node, conns,
				"-endpoints", url, "-c", cs, "-workload", "session"); err != nil {
				return "", err
			}
		}
	}
	last := c.conns[len(c.conns)-1]
	if _, err := one(fmt.Sprintf("kv-counter-leader-c%d", last), "quorumkv", "counter (incr)", "leader", last,
		"-endpoints", leaderURL, "-c", strconv.Itoa(last), "-workload", "counter"); err != nil {
		return "", err
	}
	if b.etcd != nil {
		b.etcd.stop()
		b.etcd = nil
	}

	restartNote := fmt.Sprintf(" s (n%d, SIGKILL, until a linearizable GET answers 200) |", fn)
	rssAfter := b.nodeRSS()
	restartS, err := b.restartTime(ctx, fn, keyName("session-", c.keys, 0))
	if err != nil {
		return "", err
	}
	memRows := []string{fmt.Sprintf("| %d | %s | %s%s", c.keys, rssAfter, restartS, restartNote)}
	b.e.logf("RSS after the runs: %s; follower restart: %ss", rssAfter, restartS)

	if c.memoryKeys > 0 {
		total := c.keys + c.memoryKeys
		b.e.logf("preloading %d more keys for the memory target (this takes a while)", c.memoryKeys)
		big, err := b.kb.run(ctx, filepath.Join(b.jsonDir, "preload-big.json"), "-endpoints", leaderURL, "-keys", strconv.Itoa(c.memoryKeys),
			"-key-prefix", "big-", "-preload-only", "-preload-c", "64")
		if err != nil {
			return "", err
		}
		if big.Preload != nil {
			b.notes = append(b.notes, fmt.Sprintf("memory preload: %d keys in %.0fs (%d/s)", big.Preload.Keys, math.Round(big.Preload.Seconds), int64(big.Preload.Rate)))
		}
		rssBig := b.nodeRSS()
		restartBig, err := b.restartTime(ctx, fn, keyName("big-", c.memoryKeys, 0))
		if err != nil {
			return "", err
		}
		memRows = append(memRows, fmt.Sprintf("| %d | %s | %s%s", total, rssBig, restartBig, restartNote))
		b.e.logf("RSS with %d keys: %s; follower restart: %ss", total, rssBig, restartBig)
		b.e.logf("write p99 with and without raft snapshots (%d keys, %ss)", total, c.snapSeconds)
		secs, _ := strconv.Atoi(c.snapSeconds)
		var snapOut strings.Builder
		if err := snapshotP99(ctx, &snapOut, b.kb, b.cl, time.Duration(secs)*time.Second, c.snapRate); err != nil {
			return "", fmt.Errorf("snapshot windows: %w", err)
		}
		out := snapOut.String()
		_ = os.WriteFile(filepath.Join(b.jsonDir, "snapshot-p99.txt"), []byte(out), 0o644)
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "none:") || strings.HasPrefix(line, "leader:") || strings.HasPrefix(line, "follower:") {
				b.notes = append(b.notes, fmt.Sprintf("snapshot windows (%d keys, open loop %s/s PUT on the leader): %s", total, c.snapRate, line))
			}
		}
	}
	if err := b.cl.Stop(); err != nil {
		return "", err
	}
	b.clusterU = false

	for i, r := range b.rows {
		if ref, ok := b.etcdRPS[r.workload+"|"+r.node+"|"+strconv.Itoa(r.conns)]; ok && r.system == "quorumkv" {
			b.rows[i].ratio = etcdRatio(r.rps, ref)
		}
	}
	return b.report(memRows), nil
}

func (b *benchRun) report(memRows []string) string {
	var w strings.Builder
	commit, dirty := "?", ""
	if out, err := b.git("rev-parse", "--short", "HEAD"); err == nil {
		commit = strings.TrimSpace(out)
	}
	if out, err := b.git("status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(out) != "" {
		dirty = " (with uncommitted changes)"
	}
	cmdline := "scripts/bench.sh"
	if b.c.compareEtcd {
		cmdline += " --compare-etcd"
	}
	if b.c.memoryKeys > 0 {
		cmdline += fmt.Sprintf(" --memory-keys %d", b.c.memoryKeys)
	}
	fmt.Fprintf(&w, "### Run of %s, commit `%s`%s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), commit, dirty)
	fmt.Fprintf(&w, "Machine: %d CPU (%s), %d GiB RAM, kernel %s, %s.\n", runtime.NumCPU(), cpuModel(), memGiB(), kernel(), runtime.Version())
	fmt.Fprintf(&w, "The load generator runs on the same %d cores as the servers, and other engineers' tests share the machine: compare rows of one run, not runs.\n\n", runtime.NumCPU())
	fmt.Fprintf(&w, "Command: `%s`;\n", cmdline)
	fmt.Fprintf(&w, "kvbench closed loop, %d keys of 200-byte values, ttl 3600 s, warmup %s, measured %s per row; one endpoint per row (pinned).\n\n", b.c.keys, b.c.warmup, b.c.dur)
	w.WriteString("| system | workload | node | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | vs etcd | host CPU |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range b.rows {
		w.WriteString(r.String() + "\n")
	}
	w.WriteString("\nMemory and restart (RSS of each node after the runs above):\n\n| keys | RSS | restart |\n|---|---|---|\n")
	for _, r := range memRows {
		w.WriteString(r + "\n")
	}
	w.WriteString("\n")
	for _, n := range b.notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	fmt.Fprintf(&w, "- raw kvbench JSON: %s\n", b.jsonDir)
	return w.String()
}

func (b *benchRun) git(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = b.e.Repo
	out, err := cmd.Output()
	return string(out), err
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	return firstField(f, "model name")
}

func firstField(r io.Reader, name string) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memGiB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb / (1 << 20)
		}
	}
	return 0
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
