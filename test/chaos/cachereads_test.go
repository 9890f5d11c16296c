package chaos

import (
	"strings"
	"testing"
	"time"
)

// TestCheckCacheReads runs the near-cache checks on hand-made histories: a
// clean one passes (including a read older than a write acknowledged within
// the staleness bound, and an absent answer after a delete of unknown
// outcome), and a value never written, a refused write read, a wrong version,
// an answer staler than the bound (a put and a delete missed), an absent
// answer no delete explains and an answer going back are each reported.
func TestCheckCacheReads(t *testing.T) {
	const ms = int64(time.Millisecond)
	stale := 500 * time.Millisecond
	ops := []Op{
		{Kind: opPut, Class: classReg, Key: "k01", Value: "a", Outcome: outOK, Version: 11, Call: 0, Return: 10 * ms},
		{Kind: opPut, Class: classReg, Key: "k01", Value: "b", Outcome: outOK, Version: 15, Call: 1000 * ms, Return: 1010 * ms},
		{Kind: opPut, Class: classReg, Key: "k01", Value: "refused", Outcome: outFail, Call: 1100 * ms, Return: 1110 * ms},
		{Kind: opPut, Class: classReg, Key: "k01", Value: "lost", Outcome: outOK, Precond: true, Version: 15, Call: 1100 * ms, Return: 1110 * ms},
		{Kind: opPut, Class: classReg, Key: "k02", Value: "c", Outcome: outOK, Version: 12, Call: 0, Return: 10 * ms},
		{Kind: opDelete, Class: classReg, Key: "k02", Outcome: outOK, Call: 2000 * ms, Return: 2010 * ms},
		{Kind: opPut, Class: classReg, Key: "k03", Value: "d", Outcome: outOK, Version: 13, Call: 0, Return: 10 * ms},
		{Kind: opDelete, Class: classReg, Key: "k03", Outcome: outUnknown, Call: 3000 * ms, Return: 4500 * ms},
		// An unknown put may apply after a later delete; an unknown delete
		// that returned before a put's call may apply after it.
		{Kind: opPut, Class: classReg, Key: "k04", Value: "e", Outcome: outUnknown, Call: 0, Return: 10 * ms},
		{Kind: opDelete, Class: classReg, Key: "k04", Outcome: outOK, Call: 100 * ms, Return: 110 * ms},
		{Kind: opDelete, Class: classReg, Key: "k05", Outcome: outUnknown, Call: 0, Return: 10 * ms},
		{Kind: opPut, Class: classReg, Key: "k05", Value: "f", Outcome: outOK, Version: 20, Call: 100 * ms, Return: 110 * ms},
	}
	rd := func(key, v string, version uint64, callMs int64) cacheRead {
		return cacheRead{Key: key, Found: v != "", Value: v, Version: version, Call: callMs * ms, Return: callMs*ms + ms}
	}
	good := []cacheRead{
		rd("k01", "a", 11, 100),
		rd("k01", "a", 11, 1400), // b acknowledged 390 ms before: within the bound
		rd("k01", "b", 15, 1600),
		rd("k02", "c", 12, 2400), // the delete acknowledged 390 ms before
		rd("k02", "", 0, 2600),
		rd("k03", "", 0, 3100), // the delete of unknown outcome may have applied
		rd("k04", "e", 30, 1000),
		rd("k05", "", 0, 1000),
	}
	mk := func(reads ...[]cacheRead) *cacheReaders {
		rs := &cacheReaders{}
		for i, r := range reads {
			rs.list = append(rs.list, &cacheReader{node: string(rune('a' + i)), reads: r})
		}
		return rs
	}
	if rep := checkCacheReads(mk(good, good), ops, stale); len(rep.Problems) != 0 || rep.Reads != 16 || rep.Caches != 2 {
		t.Fatalf("clean reads: %+v", rep)
	}
	for _, c := range []struct {
		name  string
		reads []cacheRead
		want  string
	}{
		{"never written", []cacheRead{rd("k01", "zz", 11, 100)}, "which no client wrote there"},
		{"refused write", []cacheRead{rd("k01", "refused", 16, 1200)}, "which no client wrote there"},
		{"412 write", []cacheRead{rd("k01", "lost", 16, 1200)}, "which no client wrote there"},
		{"written elsewhere", []cacheRead{rd("k02", "a", 11, 100)}, "which no client wrote there"},
		{"wrong version", []cacheRead{rd("k01", "a", 12, 100)}, "acknowledged at version 11"},
		{"from the future", []cacheRead{rd("k01", "b", 15, 900)}, "began after the read returned"},
		{"stale put", []cacheRead{rd("k01", "a", 11, 1600)}, "version 15 was acknowledged 0.590s before"},
		{"stale delete", []cacheRead{rd("k02", "c", 12, 2600)}, "a delete that began after its put returned"},
		{"absent unexplained", []cacheRead{rd("k01", "", 0, 1700)}, "found nothing; version 15"},
		{"went back", []cacheRead{rd("k01", "b", 15, 1600), rd("k01", "a", 11, 1650)}, "found version 11 after this cache answered version 15 (went back)"},
		{"came back", []cacheRead{rd("k03", "d", 13, 100), rd("k03", "", 0, 3100), rd("k03", "d", 13, 3200)}, "and then absent (went back)"},
	} {
		rep := checkCacheReads(mk(good, c.reads), ops, stale)
		if !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
			t.Errorf("%s: problems %q, want one saying %q", c.name, rep.Problems, c.want)
		}
	}
}
