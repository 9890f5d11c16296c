package benchrun

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{10, 10}, 10}} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("Median reordered its input: %v", c.in)
			}
		}
	}
}

func TestCPUTicks(t *testing.T) {
	// comm may hold spaces and parentheses; utime and stime are fields 14 and 15.
	stat := "4242 (kv node) (x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	got, err := cpuTicks(stat)
	if err != nil || got != 325 {
		t.Fatalf("cpuTicks = %d, %v; want 325", got, err)
	}
	if _, err := cpuTicks("4242 (short) S 1"); err == nil {
		t.Fatal("a short stat line parsed")
	}
}

func TestMetricParsing(t *testing.T) {
	text := `# HELP quorumkv_fsm_keys keys
quorumkv_fsm_keys 10000
quorumkv_fsm_keys_other 7
quorumkv_snapshots_total{reason="threshold"} 2
quorumkv_snapshots_total{reason="user"} 1
quorumkv_snapshots_total_x 9
quorumkv_expirations_applied_total 1e+05
`
	if v, ok := metricValue(text, "quorumkv_fsm_keys"); !ok || v != 10000 {
		t.Errorf("fsm_keys = %v, %v", v, ok)
	}
	if v, ok := metricValue(text, "quorumkv_expirations_applied_total"); !ok || v != 100000 {
		t.Errorf("expirations = %v, %v", v, ok)
	}
	if _, ok := metricValue(text, "quorumkv_missing"); ok {
		t.Error("a missing metric was found")
	}
	if v := metricSum(text, "quorumkv_snapshots_total"); v != 3 {
		t.Errorf("snapshots sum = %v, want 3", v)
	}
}

func TestMainUnknownAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	e := Env{Name: "x.sh", Getenv: func(string) string { return "" }, Out: &out, Err: &errb}
	if rc := Main(context.Background(), e, "nope", nil); rc != 2 || !strings.Contains(errb.String(), "session-median") {
		t.Fatalf("unknown benchmark: rc %d, %q", rc, errb.String())
	}
	errb.Reset()
	if rc := Main(context.Background(), e, "session-median", []string{"--bogus"}); rc != 2 || !strings.Contains(errb.String(), "x.sh: ") {
		t.Fatalf("bad argument: rc %d, %q", rc, errb.String())
	}
	if rc := Main(context.Background(), e, "session-median", []string{"--help"}); rc != 0 || !strings.Contains(out.String(), "TREES") {
		t.Fatalf("--help: rc %d, %q", rc, out.String())
	}
}

func TestEnvReader(t *testing.T) {
	env := map[string]string{"A": "7", "B": "x", "D": "250ms", "F": "1.5"}
	r := &envReader{getenv: func(k string) string { return env[k] }}
	if r.int("A", 1, 1) != 7 || r.int("MISSING", 3, 1) != 3 || r.duration("D", 0).Milliseconds() != 250 || r.err != nil {
		t.Fatalf("good values: %v", r.err)
	}
	r.float("F", 0.5, 0, 1)
	if r.err == nil || !errors.Is(r.err, errUsage) || !strings.Contains(r.err.Error(), "F must be") {
		t.Fatalf("out-of-range F: %v", r.err)
	}
	r.int("B", 1, 1)
	if !strings.Contains(r.err.Error(), "F must be") {
		t.Fatalf("the first error must be kept: %v", r.err)
	}
}
