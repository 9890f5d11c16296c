package benchrun

import (
	"math"
	"strings"
	"testing"
)

func TestSnapshotIntervals(t *testing.T) {
	log := `{"time":"2026-12-05T01:00:00.5Z","level":"INFO","msg":"starting snapshot up to","index":100}
not json
{"time":"2026-12-05T01:00:01Z","level":"INFO","msg":"something else"}
{"time":"2026-12-05T01:00:02.25Z","level":"INFO","msg":"snapshot complete up to","index":100}
{"time":"2026-12-05T01:00:09Z","level":"INFO","msg":"snapshot complete up to","index":100}
{"time":"2026-12-05T01:00:10Z","level":"INFO","msg":"starting snapshot up to","index":200}
`
	got := snapshotIntervals("n2", strings.NewReader(log))
	if len(got) != 1 || got[0].node != "n2" || math.Abs(got[0].end-got[0].start-1.75) > 1e-6 {
		t.Fatalf("intervals %+v", got)
	}
}

func TestSnapshotReport(t *testing.T) {
	windows := []snapWindow{{100, 102, 10}, {102.5, 104.5, 40}, {105, 107, 20}, {107.5, 109.5, 12}, {110, 112, 30}}
	intervals := []snapInterval{{"n1", 103, 103.5}, {"n2", 106, 108}, {"n3", 111, 111.5}, {"n1", 111.2, 111.3}}
	var b strings.Builder
	snapshotReport(&b, windows, intervals, "n1")
	want := `window 100.0-102.0 p99 10 ms (none snapshot)
window 102.5-104.5 p99 40 ms (leader snapshot)
window 105.0-107.0 p99 20 ms (follower snapshot)
window 107.5-109.5 p99 12 ms (follower snapshot)
window 110.0-112.0 p99 30 ms (leader snapshot)
none: 1 windows, p99 median 10.00 ms, max 10.00 ms
leader: 2 windows, p99 median 30.00 ms, max 40.00 ms
follower: 2 windows, p99 median 12.00 ms, max 20.00 ms
`
	if b.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", b.String(), want)
	}
}
