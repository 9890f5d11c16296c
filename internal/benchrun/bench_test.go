package benchrun

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBenchArgs(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, help, err := parseBenchArgs(nil, get)
	if err != nil || help || !c.write || c.compareEtcd || c.dur != "10s" || c.warmup != "2s" || len(c.conns) != 2 || c.conns[1] != 64 ||
		c.keys != 10000 || c.httpBase != 18180 || c.peerBase != 19180 || c.etcdBase != 24780 || c.snapSeconds != "120" || c.snapRate != "1000" {
		t.Fatalf("defaults: %+v %v %v", c, help, err)
	}
	c, _, err = parseBenchArgs([]string{"--quick", "--no-write", "--compare-etcd", "--memory-keys", "1000000"}, get)
	if err != nil || c.write || !c.compareEtcd || c.memoryKeys != 1000000 || c.dur != "3s" || c.warmup != "1s" || len(c.conns) != 1 || c.conns[0] != 16 {
		t.Fatalf("--quick etc.: %+v %v", c, err)
	}
	env = map[string]string{"BENCH_DUR": "5s", "BENCH_CONNS": "8 32 128"}
	if c, _, err = parseBenchArgs([]string{"--quick"}, get); err != nil || c.dur != "5s" || c.warmup != "1s" || len(c.conns) != 3 {
		t.Fatalf("--quick keeps what the environment sets: %+v %v", c, err)
	}
	if _, help, _ = parseBenchArgs([]string{"-h"}, get); !help {
		t.Fatal("-h is not help")
	}
	env = map[string]string{}
	for _, args := range [][]string{{"--memory-keys"}, {"--memory-keys", "x"}, {"--memory-keys", "-1"}, {"--bogus"}} {
		if _, _, err := parseBenchArgs(args, get); !errors.Is(err, errUsage) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
	for k, v := range map[string]string{"BENCH_CONNS": "16 x", "BENCH_DUR": "3", "BENCH_KEYS": "0", "BENCH_SNAP_RATE": "0"} {
		env = map[string]string{k: v}
		if _, _, err := parseBenchArgs(nil, get); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v", k, v, err)
		}
	}
}

func TestBenchRowAndRatio(t *testing.T) {
	r := benchRow{system: "quorumkv", workload: "write (PUT, ttl)", node: "leader", conns: 16, rps: 2202,
		p50: 5.3449, p99: 40.6, p999: 68.0, errors: 0, cpu: "cpu 92%, steal 0%"}
	want := "| quorumkv | write (PUT, ttl) | leader | 16 | 2202 | 5.34 | 40.6 | 68 | 0 | - | cpu 92%, steal 0% |"
	if got := r.String(); got != want {
		t.Fatalf("row %q\nwant %q", got, want)
	}
	if got := etcdRatio(2202, 2377); got != "×0.93" {
		t.Errorf("ratio %q", got)
	}
	if got := etcdRatio(5, 0); got != "×n/a" {
		t.Errorf("ratio against 0: %q", got)
	}
	if jqNum(0.125) != "0.13" || jqNum(2) != "2" {
		t.Errorf("jqNum: %s %s", jqNum(0.125), jqNum(2))
	}
}

func TestCPUSampleAndDelta(t *testing.T) {
	a := parseCPUSample("cpu  100 10 50 800 40 5 5 2 0 0\ncpu0 1 2 3 4 5 6 7 8\n")
	if a != (cpuSample{busy: 170, idle: 840, steal: 2}) {
		t.Fatalf("sample %+v", a)
	}
	b := cpuSample{busy: 170 + 90, idle: 840 + 8, steal: 2 + 2}
	if got := cpuDelta(a, b); got != "cpu 90%, steal 2%" {
		t.Fatalf("delta %q", got)
	}
	if got := cpuDelta(a, a); got != "cpu 0%, steal 0%" {
		t.Fatalf("empty delta %q", got)
	}
}

func TestKeyNameRSSAndMarkers(t *testing.T) {
	if got := keyName("session-", 10000, 0); got != "session-00000" {
		t.Errorf("keyName %q", got)
	}
	if got := keyName("big-", 1000000, 7); got != "big-000007" {
		t.Errorf("keyName %q", got)
	}
	st := "Name:\tkvnode\nVmRSS:\t   54272 kB\nRssAnon:\t   38912 kB\nRssFile:\t   15360 kB\n"
	if got := rssText(st); got != "53 MB (anon 38 + file 15)" {
		t.Errorf("rssText %q", got)
	}
	doc := "# B\n<!-- b -->\nold\nold\n<!-- e -->\ntail\n"
	got, err := replaceBetween(doc, "<!-- b -->", "<!-- e -->", "new\n")
	if err != nil || got != "# B\n<!-- b -->\nnew\n<!-- e -->\ntail\n" {
		t.Fatalf("replaceBetween %q %v", got, err)
	}
	if _, err := replaceBetween("no markers\n", "<!-- b -->", "<!-- e -->", "x"); err == nil {
		t.Fatal("missing markers accepted")
	}
	if got := errorSummaryOf([]byte(`{"errors":[{"op":"put","error":"503 unavailable","count":3},{"op":"get","error":"timeout","count":1}]}`)); got != "put 503 unavailable x3; get timeout x1" {
		t.Errorf("errorSummaryOf %q", got)
	}
	if got := errorSummaryOf([]byte(`{"errors":[]}`)); got != "" {
		t.Errorf("no errors: %q", got)
	}
}
