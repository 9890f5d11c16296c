package benchrun

import (
	"strings"
	"testing"
)

func TestParseSessionEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, err := parseSessionEnv(get, "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.runs != 3 || c.dur != "10s" || c.warmup != "2s" || c.conns != 16 || c.keys != 10000 || c.readFraction != "0.9" ||
		!c.etcd || c.runSeconds != 12 || len(c.trees) != 1 || c.trees[0] != (tree{"this", "/src"}) {
		t.Fatalf("defaults: %+v", c)
	}
	env = map[string]string{"RUNS": "1", "DUR": "500ms", "WARMUP": "1s", "ETCD": "0", "TREES": "before=/tmp/a  after=.", "READ_FRACTION": "1"}
	c, err = parseSessionEnv(get, "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.runs != 1 || c.etcd || c.runSeconds != 1.5 || len(c.trees) != 2 || c.trees[1] != (tree{"after", "."}) || c.readFraction != "1" {
		t.Fatalf("set: %+v", c)
	}
	for k, v := range map[string]string{"RUNS": "0", "DUR": "10", "ETCD": "yes", "TREES": "nolabel", "READ_FRACTION": "1.5", "C": "x"} {
		env = map[string]string{k: v}
		if _, err := parseSessionEnv(get, "/src"); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v, want one naming %s", k, v, err, k)
		}
	}
}

func TestSessionTable(t *testing.T) {
	var rows []sessionRow
	add := func(label, node string, round int, rps, cpu float64) {
		rows = append(rows, sessionRow{label: label, node: node, round: round, rps: rps, getP50: rps / 1000, getP99: rps / 500,
			putP99: 3, errors: uint64(round), cpuUsPerReq: cpu})
	}
	add("this", "leader", 1, 6000, 180)
	add("this", "follower", 1, 3000, 250)
	add("etcd", "leader", 1, 4000, 0)
	add("etcd", "follower", 1, 4000, 0)
	add("this", "leader", 2, 5000, 190)
	add("this", "follower", 2, 4000, 260)
	add("etcd", "leader", 2, 5000, 0)
	add("etcd", "follower", 2, 3000, 0)
	got := sessionTable(rows, []string{"this", "etcd"})
	want := `| system | node | req/s | GET p50 ms | GET p99 ms | PUT p99 ms | errors | node CPU µs/req | vs own leader | vs etcd same node | req/s per round |
|---|---|---|---|---|---|---|---|---|---|---|
| this | leader | 5500 | 5.50 | 11.00 | 3.00 | 3 | 185 | 100 % | ×1.25 | 6000 5000 |
| this | follower | 3500 | 3.50 | 7.00 | 3.00 | 3 | 255 | 65 % | ×1.04 | 3000 4000 |
| etcd | leader | 4500 | 4.50 | 9.00 | 3.00 | 3 | - | 100 % | - | 4000 5000 |
| etcd | follower | 3500 | 3.50 | 7.00 | 3.00 | 3 | - | 80 % | - | 4000 3000 |
`
	// this/follower: own 0.5 and 0.8 -> 65 %; vs etcd 0.75 and 1.333 -> 1.04.
	// etcd/follower: own 1.0 and 0.6 -> 80 %.
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestSessionHeader(t *testing.T) {
	c := sessionConfig{readFraction: "0.9", conns: 16, keys: 10000, dur: "6s", warmup: "1s", runs: 3}
	want := "Session workload: 90 % GET (linearizable) / the rest PUT (ttl 3600 s), c16, 10000 keys, 6s per row after 1s warmup; median of 3 rounds."
	if got := sessionHeader(c); got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
}
