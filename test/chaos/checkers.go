package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// anomalies counts every kind of violation the checkers look for. All must be zero.
type anomalies struct {
	NonLinearizable   int `json:"nonLinearizable"`   // 1 when porcupine found the register history illegal
	LostAcks          int `json:"lostAcks"`          // acknowledged ack/ write missing (or different) on a node
	InventedAcks      int `json:"inventedAcks"`      // ack/ value present that was refused, or never sent
	Diverged          int `json:"diverged"`          // 1 when the nodes' state hashes did not agree within 10 s
	TTLResurrections  int `json:"ttlResurrections"`  // value read after its expiry
	TTLEarlyExpiries  int `json:"ttlEarlyExpiries"`  // acknowledged value missing before its expiry
	TTLBadStamps      int `json:"ttlBadStamps"`      // expiresAt not ttl after the write (or changed between reads)
	LogProblems       int `json:"logProblems"`       // panic / data race / fatal lines in node logs
	UncleanExits      int `json:"uncleanExits"`      // a node that did not stop cleanly at the end
	GuardFailures     int `json:"guardFailures"`     // a fault that did not take effect, or an idle cluster
	CheckerIncomplete int `json:"checkerIncomplete"` // porcupine hit its time limit or failed
	UnexpectedKeys    int `json:"unexpectedKeys"`    // a listed key (or value) no client wrote, or a node that could not list
	ClockProbe        int `json:"clockProbe"`        // a long-TTL key lost or a keyed incr applied twice across a clock fault
	Watch             int `json:"watch"`             // a watcher's deliveries with a gap, duplicate, reordering, uncommitted write or wrong final state
	Cache             int `json:"nearCache"`         // a near-cache read of a value never written, staler than its bound, or going back
	Transfers         int `json:"transfers"`         // a transfer history porcupine rejects, a wrong account total, a group unreadable after healing
}

func (a anomalies) total() int {
	return a.NonLinearizable + a.LostAcks + a.InventedAcks + a.Diverged + a.TTLResurrections +
		a.TTLEarlyExpiries + a.TTLBadStamps + a.LogProblems + a.UncleanExits + a.GuardFailures + a.CheckerIncomplete +
		a.UnexpectedKeys + a.ClockProbe + a.Transfers + a.Watch + a.Cache
}

// checkListing lists every live key on every node after healing (GET
// /kv/items with an empty prefix, values included, linearizable, paged) and
// reports each key that no client tried to write with a put that can have
// taken effect (ok or unknown; a refused put or a 412 wrote nothing), and
// each value that was never written to that key.
func checkListing(ctx context.Context, api *apiClient, nodes []*node, ops []Op) (listed int, problems []string) {
	written := map[string]map[string]bool{} // key -> values put with an outcome other than fail
	for _, o := range ops {
		if o.Kind == opPut && o.Outcome != outFail {
			if written[o.Key] == nil {
				written[o.Key] = map[string]bool{}
			}
			written[o.Key][o.Value] = true
		}
	}
	for _, n := range nodes {
		var items []listedItem
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			items, err = api.listAll(lctx, n.httpBase(), "")
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: could not list the keys: %v", n.id, err))
			continue
		}
		for _, it := range items {
			if strings.HasPrefix(it.Key, probePrefix) || strings.HasPrefix(it.Key, transferPrefix) {
				continue // the clock probe's and the transfer workload's keys, checked by them (clock.go, transfer.go)
			}
			listed++
			values, ok := written[it.Key]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: lists key %q (version %d), which no client wrote", n.id, it.Key, it.Version))
				continue
			}
			var v string
			if json.Unmarshal(it.Value, &v) != nil || !values[v] {
				problems = append(problems, fmt.Sprintf("%s: lists %q = %s (version %d), a value never written to it", n.id, it.Key, it.Value, it.Version))
			}
		}
	}
	return listed, problems
}

// checkAcks reads every ack/ key any client tried to write, on every node
// (linearizable reads, so each node's own state machine answers after catching
// up), plus a few never-written keys past each client's last one. An
// acknowledged write must be there with its value; a refused write must not;
// a write of unknown outcome may be either; an unwritten key must be absent.
func checkAcks(ctx context.Context, api *apiClient, nodes []*node, ops []Op) (checked int, lost, invented []string) {
	type want struct {
		value   string
		outcome string
	}
	wants := map[string]want{}
	last := map[int]int{}
	for _, o := range ops {
		if o.Class == classAck && o.Kind == opPut {
			wants[o.Key] = want{o.Value, o.Outcome}
			var c, n int
			fmt.Sscanf(o.Key, "ack/c%d/%d", &c, &n)
			last[c] = max(last[c], n)
		}
	}
	for c, n := range last {
		for i := 1; i <= 3; i++ {
			wants[fmt.Sprintf("ack/c%d/%d", c, n+i)] = want{outcome: "never-sent"}
		}
	}
	keys := make([]string, 0, len(wants))
	for k := range wants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, n := range nodes {
		for _, k := range keys {
			w := wants[k]
			var op Op
			for attempt := 0; attempt < 20; attempt++ {
				op = Op{Kind: opGet, Key: k}
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				api.execute(rctx, n.httpBase(), &op)
				cancel()
				if op.Outcome == outOK || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if op.Outcome != outOK {
				lost = append(lost, fmt.Sprintf("%s on %s: could not read (%s)", k, n.id, op.Code))
				continue
			}
			checked++
			switch {
			case w.outcome == outOK && (!op.Found || op.Got != w.value):
				lost = append(lost, fmt.Sprintf("%s on %s: acknowledged %q, read found=%v %q", k, n.id, w.value, op.Found, op.Got))
			case (w.outcome == outFail || w.outcome == "never-sent") && op.Found:
				invented = append(invented, fmt.Sprintf("%s on %s: %s write, read %q", k, n.id, w.outcome, op.Got))
			case w.outcome == outUnknown && op.Found && op.Got != w.value:
				invented = append(invented, fmt.Sprintf("%s on %s: wrote %q (unknown outcome), read %q", k, n.id, w.value, op.Got))
			}
		}
	}
	return checked, lost, invented
}

// waitConverged polls every node's /debug/state until all report the same
// applied index and state hash, or the deadline passes.
func waitConverged(api *apiClient, nodes []*node, within time.Duration) (time.Duration, []string, error) {
	start := time.Now()
	var last []string
	for {
		states := map[string]bool{}
		last = last[:0]
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := api.debugState(ctx, n.httpBase())
			cancel()
			desc := fmt.Sprintf("%s: applied %d hash %s", n.id, st.AppliedIndex, st.StateHash)
			if err != nil {
				desc = fmt.Sprintf("%s: %v", n.id, err)
			}
			last = append(last, desc)
			states[fmt.Sprintf("%d/%s", st.AppliedIndex, st.StateHash)] = err == nil
		}
		if len(states) == 1 {
			for _, ok := range states {
				if ok {
					return time.Since(start), last, nil
				}
			}
		}
		if time.Since(start) > within {
			return time.Since(start), last, fmt.Errorf("state hashes differ after %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ttlReport is what the TTL window checker found.
type ttlReport struct {
	Keys             int      `json:"keys"`               // TTL keys acknowledged
	Reads            int      `json:"reads"`              // successful reads of TTL keys
	AcrossLeaderChg  int      `json:"acrossLeaderChange"` // acknowledged TTL keys whose lifetime spanned a leader change
	Resurrections    []string `json:"resurrections,omitempty"`
	EarlyExpiries    []string `json:"earlyExpiries,omitempty"`
	BadStamps        []string `json:"badStamps,omitempty"`
	ClockToleranceMs [2]int64 `json:"clockToleranceMs"` // the windows' widening: [-max, +max] clock offset
}

// ttlSlack absorbs millisecond rounding of expiresAt and clock reads.
const ttlSlack = 25 * time.Millisecond

// checkTTL applies the time-window model to the ttl/ keys. Each is written once
// with TTL d and never deleted. The leader that commits the write stamps
// E = its clock + d; a read hides the value iff the clock of the leader that
// confirms it is >= E. With the clocks that stamp and judge within [oMin,
// oMax] of real time (the suite passes the cluster's --max-clock-offset as
// the bound, never an offset a nemesis injected: a clock beyond the bound
// must not decide time at all), a read that returns the value is a
// resurrection if it began after E - oMin; a miss is an early expiry if the
// write was acknowledged before the read began and the read ended before
// E - oMax; and once a miss has been observed after the write was acknowledged,
// a later read returning the value is a resurrection unless the offsets'
// spread could explain it.
func checkTTL(ops []Op, start time.Time, oMin, oMax time.Duration, leaders []leaderTerm) ttlReport {
	rep := ttlReport{ClockToleranceMs: [2]int64{oMin.Milliseconds(), oMax.Milliseconds()}}
	wall := func(ns int64) time.Time { return start.Add(time.Duration(ns)) }
	writes := map[string]Op{}
	reads := map[string][]Op{}
	for _, o := range ops {
		if o.Class != classTTL {
			continue
		}
		switch {
		case o.Kind == opPut && o.Outcome != outFail:
			writes[o.Key] = o
		case o.Kind == opGet && o.Outcome == outOK:
			reads[o.Key] = append(reads[o.Key], o)
		}
	}
	for key, w := range writes {
		ttl := time.Duration(w.TTLms) * time.Millisecond
		E := time.Time{}
		if w.Outcome == outOK {
			rep.Keys++
			E = time.UnixMilli(w.ExpiresAt)
			lo, hi := wall(w.Call).Add(ttl+oMin-ttlSlack), wall(w.Return).Add(ttl+oMax+ttlSlack)
			if E.Before(lo) || E.After(hi) {
				rep.BadStamps = append(rep.BadStamps, fmt.Sprintf("%s: ttl %s written in [%s, %s] stamped expiresAt %s",
					key, ttl, wall(w.Call).Format(time.StampMilli), wall(w.Return).Format(time.StampMilli), E.Format(time.StampMilli)))
			}
			for _, l := range leaders[min(1, len(leaders)):] {
				if l.At > w.Call && wall(l.At).Before(E) {
					rep.AcrossLeaderChg++
					break
				}
			}
		}
		rs := reads[key]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Call < rs[j].Call })
		var missSeen int64 = -1 // Return of the earliest-returning observed miss
		for _, r := range rs {
			rep.Reads++
			if r.Found && r.Got != w.Value {
				rep.Resurrections = append(rep.Resurrections, fmt.Sprintf("%s: read %q, only %q was written", key, r.Got, w.Value))
				continue
			}
			if r.Found {
				RE := time.UnixMilli(r.ExpiresAt)
				if !E.IsZero() && !RE.Equal(E) {
					rep.BadStamps = append(rep.BadStamps, fmt.Sprintf("%s: write stamped %s, read on %s reports %s", key, E.Format(time.StampMilli), r.Node, RE.Format(time.StampMilli)))
				}
				if wall(r.Call).After(RE.Add(-oMin + ttlSlack)) {
					rep.Resurrections = append(rep.Resurrections, fmt.Sprintf("%s: read on %s began %s, after expiry %s (%s late)",
						key, r.Node, wall(r.Call).Format(time.StampMilli), RE.Format(time.StampMilli), wall(r.Call).Sub(RE)))
				}
				if missSeen >= 0 && time.Duration(r.Call-missSeen) > oMax-oMin+ttlSlack {
					rep.Resurrections = append(rep.Resurrections, fmt.Sprintf("%s: read on %s at %s found the value %s after a read had seen it expired",
						key, r.Node, wall(r.Call).Format(time.StampMilli), time.Duration(r.Call-missSeen)))
				}
				continue
			}
			// A miss proves expiry only after the write was acknowledged: a
			// write of unknown outcome may still take effect later (a paused
			// node can apply a buffered request after the client gave up).
			if w.Outcome == outOK && r.Call > w.Return && (missSeen < 0 || r.Return < missSeen) {
				missSeen = r.Return
			}
			if w.Outcome == outOK && r.Call > w.Return && wall(r.Return).Before(E.Add(-oMax-ttlSlack)) {
				rep.EarlyExpiries = append(rep.EarlyExpiries, fmt.Sprintf("%s: read on %s ended %s, %s before expiry %s",
					key, r.Node, wall(r.Return).Format(time.StampMilli), E.Sub(wall(r.Return)), E.Format(time.StampMilli)))
			}
		}
	}
	return rep
}

// logProblemMarkers are lines no node may ever log.
var logProblemMarkers = []string{
	"panic:", "fatal error:", "WARNING: DATA RACE", "panic serving request",
	"concurrent map", `"level":"FATAL"`,
}

// scanLog returns the lines of path that contain a problem marker (at most 20).
func scanLog(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range logProblemMarkers {
			if strings.Contains(line, m) {
				if len(bad) < 20 {
					bad = append(bad, line)
				}
				break
			}
		}
	}
	return bad, sc.Err()
}
