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
