package benchrun

import (
	"strings"
	"testing"
)

func TestParseExpiryEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, err := parseExpiryEnv(get)
	if err != nil {
		t.Fatal(err)
	}
	want := expiryConfig{keys: 100000, chunk: 1000, loadKeys: 10000, window: 5, runs: 1, rate: "1000",
		httpBase: 38080, peerBase: 39080, snapshotThreshold: "1000000"}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	env = map[string]string{"EXP_KEYS": "5000", "EXP_LEAD": "40", "EXP_RATE": "250.5", "EXP_KEEP": "1", "EXP_RUNS": "2"}
	if c, err = parseExpiryEnv(get); err != nil || c.keys != 5000 || c.lead != 40 || c.rate != "250.5" || !c.keep || c.runs != 2 {
		t.Fatalf("set: %+v, %v", c, err)
	}
	for k, v := range map[string]string{"EXP_KEYS": "0", "EXP_RATE": "fast", "EXP_WINDOW": "2.5", "EXP_HTTP_BASE": "70000",
		"EXP_SNAPSHOT_THRESHOLD": "-1", "EXP_LEAD": "x"} {
		env = map[string]string{k: v}
		if _, err := parseExpiryEnv(get); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v, want one naming %s", k, v, err, k)
		}
	}
}

func TestExpiryLeadAndChunks(t *testing.T) {
	if got := expiryLead(100000, 4000); got != 70 {
		t.Errorf("lead(100000 keys at 4000/s) = %d, want 70", got)
	}
	if got := expiryLead(5000, 3001); got != 24 {
		t.Errorf("lead rounds up: %d, want 24", got)
	}
	if got := chunkSizes(2500, 1000); len(got) != 3 || got[0] != 1000 || got[2] != 500 {
		t.Errorf("chunkSizes(2500, 1000) = %v", got)
	}
	if got := chunkSizes(2000, 1000); len(got) != 2 || got[1] != 1000 {
		t.Errorf("chunkSizes(2000, 1000) = %v", got)
	}
}

func TestExpiryReport(t *testing.T) {
	var b strings.Builder
	c := expiryConfig{keys: 5000, rate: "300"}
	w := func(p99 float64, snaps int64) loadWindow {
		return loadWindow{p50: 3.2, p99: p99, p999: 50, rate: 299, errors: 1, snapshots: snaps}
	}
	expiryReport(&b, 1, c, 0.362, "n1", w(20, 0), w(40, 1), w(80, 0), []removal{
		{node: 2, secs: 0.5, applied: 5000, vbytes: 2e6}, {node: 3, timeout: true}})
	want := `run 1: 5000 keys expiring at T (spread 0.36s), load 300 req/s open loop c64 on the leader (n1)
  write before window: p50    3.20 ms  p99   20.00 ms  p99.9   50.00 ms  (299 req/s, 1 errors, 0 snapshots)
  write expiry window: p50    3.20 ms  p99   40.00 ms  p99.9   50.00 ms  (299 req/s, 1 errors, 1 snapshots)
  write after window:  p50    3.20 ms  p99   80.00 ms  p99.9   50.00 ms  (299 req/s, 1 errors, 0 snapshots)
  p99 ratio expiry/before: 2.00  expiry/after: 0.50
  n2: no expiring key left at T+0.500s, T+0.138s after the last expiry (applied expirations 5000, value bytes 2000000)
  n3: expiring keys still present 60 s after T
`
	if b.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", b.String(), want)
	}
}
