package benchrun

import (
	"errors"
	"strings"
	"testing"
)

func TestParseGCSettings(t *testing.T) {
	s, bins, err := parseGCSettings("default: floor50:KV_GC_MIN_PERCENT=50,GOGC=100 before@old:", "old=/tmp/kvnode-old")
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 3 || s[0].label != "default" || len(s[0].env) != 0 || s[1].label != "floor50" ||
		strings.Join(s[1].env, " ") != "KV_GC_MIN_PERCENT=50 GOGC=100" || s[2].label != "before@old" || s[2].bin != "old" || bins["old"] != "/tmp/kvnode-old" {
		t.Fatalf("settings %+v bins %v", s, bins)
	}
	for _, c := range [][2]string{{"", ""}, {"nocolon", ""}, {"x@missing:", ""}, {"x:NOEQUALS", ""}, {"x:", "badbins"}} {
		if _, _, err := parseGCSettings(c[0], c[1]); !errors.Is(err, errUsage) {
			t.Errorf("SETTINGS=%q BINS=%q: error %v, want a usage error", c[0], c[1], err)
		}
	}
}

func TestSnapshotSummaryAndGCTable(t *testing.T) {
	out := "window 1.0-3.0 p99 3 ms (none snapshot)\nnone: 2 windows, p99 median 3.28 ms, max 7.21 ms\nleader: 1 windows, p99 median 9.00 ms, max 9.00 ms\n"
	none, windows, all := snapshotSummary(out)
	if none != "3.28" || windows != "2" || all != "none: 2 windows, p99 median 3.28 ms, max 7.21 ms;leader: 1 windows, p99 median 9.00 ms, max 9.00 ms" {
		t.Fatalf("summary %q %q %q", none, windows, all)
	}
	var b strings.Builder
	gcTable(&b, 5000, "300", 5, []gcRow{
		{round: 1, s: gcSetting{label: "default"}, none: none, windows: windows, gcCycles: 13, gogc: "100", rss: "33/30/30"},
		{round: 1, s: gcSetting{label: "gogc50", envText: "GOGC=50"}, gcCycles: 20, gogc: "50", rss: "30/30/30"}})
	want := `Write p99 at 5000 keys, open loop 300 PUT/s on the leader, 2 s windows for 5 s per setting and round.

| round | setting | environment | p99 ms, median of windows without a snapshot (windows) | leader GC cycles | leader GOGC at end | RSS MiB n1/n2/n3 |
|---|---|---|---|---|---|---|
| 1 | default | - | 3.28 (2) | 13 | 100 | 33/30/30 |
| 1 | gogc50 | GOGC=50 | n/a (0) | 20 | 50 | 30/30/30 |
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
