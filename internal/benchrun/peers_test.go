package benchrun

import (
	"strings"
	"testing"
)

func TestPeersMedianTable(t *testing.T) {
	run := func(ours, etcd, p99 string) string {
		return `| system | op | node | conns | req/s | p50 | p99 | non-2xx | check |
|---|---|---|---|---|---|---|---|---|
| etcd 3.4 | put | leader | 16 | ` + etcd + ` | 1.0 | 9.0 | 0 | ok |
| etcd 3.4 | get-ser | leader | 16 | 5000 | 1.0 | 4.0 | 0 | ok |
| redis | set | - | 64 | 90000 | - | - | - | - |
| ours | kv-put | leader | 16 | ` + ours + ` | 1.0 | ` + p99 + ` | 0 | ok |
| ours | kv-get-stale | leader | 16 | 10000 | 1.0 | 2.0 | 0 | ok |
| ours | kv-get | leader | 16 | 7000 | 1.0 | 3.0 | 0 | ok |
`
	}
	var b strings.Builder
	peersMedianTable(&b, []string{run("2000", "1000", "10"), run("3000", "2000", "20"), run("1000", "1000", "30")})
	want := `| op | node | conns | ours req/s | etcd req/s | ratio (median of 3) | ratios per run | p99 ours ms | p99 etcd ms |
|---|---|---|---|---|---|---|---|---|
| kv-put | leader | 16 | 2000 | 1000 | ×1.50 | 2.000 1.500 1.000 | 20.0 | 9.0 |
| kv-get-stale | leader | 16 | 10000 | 5000 | ×2.00 | 2.000 2.000 2.000 | 2.0 | 4.0 |
| kv-get | leader | 16 | 7000 | 0 | ×0.00 |  | 3.0 | 0.0 |
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// The PUT rows get a second table against the same run's Redis SET with
// appendfsync always; the RDB-only Redis row and the GET rows are not in it,
// and a run without that Redis row adds nothing to it.
func TestPeersMedianTableRedis(t *testing.T) {
	run := func(put, redisAlways string) string {
		s := `| system | op | node | conns | req/s | p50 ms | p99 ms | non-2xx | check |
|---|---|---|---|---|---|---|---|---|
| etcd 3.4 | put | leader | 64 | 1000 | 1.0 | 9.0 | 0 | ok |
| redis 7.0.15 (default) | set | single | 64 | 90000 | 0.30 | 0.90 | - | RDB only |
`
		if redisAlways != "" {
			s += `| redis 7.0.15 (aof-always) | set | single | 64 | ` + redisAlways + ` | 1.00 | 4.00 | - | AOF fsync=always |
| redis 7.0.15 (aof-always) | get | single | 64 | 80000 | 0.30 | 0.90 | - | AOF fsync=always |
`
		}
		return s + `| ours | kv-put | leader | 64 | ` + put + ` | 1.0 | 10.0 | 0 | ok |
| ours | kv-get | leader | 64 | 7000 | 1.0 | 3.0 | 0 | ok |
`
	}
	var b strings.Builder
	peersMedianTable(&b, []string{run("2000", "10000"), run("3000", "6000"), run("1000", "")})
	want := `| op | node | conns | ours req/s | etcd req/s | ratio (median of 3) | ratios per run | p99 ours ms | p99 etcd ms |
|---|---|---|---|---|---|---|---|---|
| kv-put | leader | 64 | 2000 | 1000 | ×2.00 | 2.000 3.000 1.000 | 10.0 | 9.0 |
| kv-get | leader | 64 | 7000 | 0 | ×0.00 |  | 3.0 | 0.0 |

| op | node | conns | ours req/s | Redis SET (appendfsync always, c64) req/s | ratio (median of 2) | ratios per run | p99 ours ms | p99 Redis ms |
|---|---|---|---|---|---|---|---|---|
| kv-put | leader | 64 | 2500 | 8000 | ×0.35 | 0.200 0.500 | 10.0 | 4.0 |
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
