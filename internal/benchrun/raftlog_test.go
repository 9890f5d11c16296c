package benchrun

import (
	"strings"
	"testing"
)

func TestParseRaftlogEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if c, err := parseRaftlogEnv(get); err != nil || c.runs != 3 || c.conns != 64 || c.dur != "10s" || c.httpBase != 18080 || c.peerBase != 19080 {
		t.Fatalf("defaults %+v %v", c, err)
	}
	env = map[string]string{"RUNS": "1", "D": "5s", "KV_CLUSTER_HTTP_BASE": "33000"}
	if c, err := parseRaftlogEnv(get); err != nil || c.runs != 1 || c.dur != "5s" || c.httpBase != 33000 {
		t.Fatalf("set %+v %v", c, err)
	}
	for k, v := range map[string]string{"RUNS": "0", "D": "5", "C": "-1"} {
		env = map[string]string{k: v}
		if _, err := parseRaftlogEnv(get); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

func TestRaftlogTable(t *testing.T) {
	var b strings.Builder
	raftlogTable(&b, 1, map[string]raftlogResult{"bolt-leader-1": {2892.4, 15.31}, "wal-leader-1": {3734, 13.8},
		"bolt-follower-1": {2000, 20}, "wal-follower-1": {2240, 25}})
	want := `| round | node | bolt PUT/s | bolt p99 ms | wal PUT/s | wal p99 ms | wal/bolt PUT/s | wal/bolt p99 |
|---|---|---|---|---|---|---|---|
| 1 | leader | 2892 | 15.3 | 3734 | 13.8 | x1.29 | x0.90 |
| 1 | follower | 2000 | 20.0 | 2240 | 25.0 | x1.12 | x1.25 |
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
