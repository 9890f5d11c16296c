package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Env is what a procedure reads from its environment and writes to.
type Env struct {
	Repo   string // the source tree the procedure was started from
	Name   string // the name used in messages (the wrapper script's)
	Getenv func(string) string
	Out    io.Writer // results
	Err    io.Writer // progress and diagnostics
}

// errUsage marks an error the caller answers with exit status 2.
var errUsage = errors.New("usage")

// Procedures maps `kvdev bench NAME` to its implementation.
var Procedures = map[string]func(ctx context.Context, e Env, args []string) error{
	"session-median": SessionMedian,
	"bench-expiry":   BenchExpiry,
	"bench":          Bench,
	"snapshot-p99":   SnapshotP99,
	"raftlog-ab":     RaftlogAB,
	"peers-median":   PeersMedian,
	"gc-p99":         GCP99,
}

// Main runs procedure name with args and returns the exit status.
func Main(ctx context.Context, e Env, name string, args []string) int {
	p, ok := Procedures[name]
	if !ok {
		var names []string
		for n := range Procedures {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(e.Err, "%s: unknown benchmark %q (one of %s)\n", e.Name, name, strings.Join(names, ", "))
		return 2
	}
	err := p(ctx, e, args)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(e.Err, "%s: interrupted\n", e.Name)
		return 130
	case errors.Is(err, errUsage):
		fmt.Fprintf(e.Err, "%s: %v\n", e.Name, err)
		return 2
	}
	fmt.Fprintf(e.Err, "%s: %v\n", e.Name, err)
	return 1
}

func (e Env) logf(format string, a ...any) {
	fmt.Fprintf(e.Err, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// envReader parses settings, remembering the first bad one.
type envReader struct {
	getenv func(string) string
	err    error
}

func (r *envReader) str(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

func (r *envReader) int(name string, def, min int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		r.fail(fmt.Errorf("%s must be a whole number >= %d, got %q", name, min, v))
		return def
	}
	return n
}

func (r *envReader) float(name string, def, min, max float64) float64 {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min || f > max {
		r.fail(fmt.Errorf("%s must be a number in [%g, %g], got %q", name, min, max, v))
		return def
	}
	return f
}

func (r *envReader) duration(name string, def time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(fmt.Errorf("%s must be a Go duration such as 10s or 500ms, got %q", name, v))
		return def
	}
	return d
}

func (r *envReader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %v", errUsage, err)
	}
}

// Median of xs (the mean of the two middle values for an even count; 0 for
// none). xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Report is the part of kvbench's -o json report the procedures read.
type Report struct {
	Total   OpReport            `json:"total"`
	Ops     map[string]OpReport `json:"ops"`
	Preload *struct {
		Keys    int     `json:"keys"`
		Seconds float64 `json:"seconds"`
		Rate    float64 `json:"rate"`
	} `json:"preload"`
}

// OpReport is one op's (or the total's) figures.
type OpReport struct {
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	Rate     float64 `json:"rate"`
	Latency  struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99.9"`
	} `json:"latencyMs"`
}

// kvbench is a built cmd/kvbench.
type kvbench struct {
	path string
	env  []string // nil: this process's environment
}

// buildKvbench builds cmd/kvbench of repo into dir.
func buildKvbench(ctx context.Context, repo, dir string) (*kvbench, error) {
	out := filepath.Join(dir, "kvbench")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, "./cmd/kvbench")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/kvbench failed: %v\n%s", err, b)
	}
	return &kvbench{path: out}, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// run runs kvbench with args and -o json, keeps the report in save (when
// not empty) and decodes it. A failed run's stderr is in the error.
func (k *kvbench) run(ctx context.Context, save string, args ...string) (*Report, error) {
	cmd := exec.CommandContext(ctx, k.path, append(append([]string(nil), args...), "-o", "json")...)
	cmd.Env = k.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kvbench %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if save != "" {
		if err := os.WriteFile(save, out, 0o644); err != nil {
			return nil, err
		}
	}
	var r Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("kvbench %s: report is not JSON: %v", strings.Join(args, " "), err)
	}
	return &r, nil
}

// getBody GETs url with a bearer key and returns the body (at most 8 MiB).
func getBody(ctx context.Context, url, key string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err == nil && resp.StatusCode/100 != 2 {
		err = fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, err
}

// metricValue returns the first sample of the unlabelled metric name in a
// Prometheus text exposition.
func metricValue(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// metricSum adds every sample of the metric family name (any labels).
func metricSum(text, name string) float64 {
	var s float64
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				s += v
			}
		}
	}
	return s
}

// cpuTicks parses /proc/PID/stat's user+system clock ticks.
func cpuTicks(stat string) (int64, error) {
	i := strings.LastIndex(stat, ") ")
	if i < 0 {
		return 0, errors.New("no ') ' in /proc stat")
	}
	f := strings.Fields(stat[i+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad utime/stime in /proc stat")
	}
	return u + s, nil
}

// processTicks is cpuTicks of a running pid, 0 when it cannot be read.
func processTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if pid <= 0 || err != nil {
		return 0
	}
	t, err := cpuTicks(string(b))
	if err != nil {
		return 0
	}
	return t
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), 100 if unknown.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// ceil for whole seconds computed from floats.
func ceil(f float64) int { return int(math.Ceil(f)) }

// errorSummaryOf lists a kvbench report's errors as "op error xN; ...", ""
// when there were none.
func errorSummaryOf(raw []byte) string {
	var r struct {
		Errors []struct {
			Op    string `json:"op"`
			Error string `json:"error"`
			Count uint64 `json:"count"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	var parts []string
	for _, e := range r.Errors {
		parts = append(parts, fmt.Sprintf("%s %s x%d", e.Op, e.Error, e.Count))
	}
	return strings.Join(parts, "; ")
}
