package chaos

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	kv "github.com/quorumkv/quorumkv/client"
)

// TestCheckWatchers runs the watch checks on hand-made deliveries: a clean
// one passes, and a gap, a duplicate, a reordering, an uncommitted value, a
// stale final state and a disagreement between watchers are each reported.
func TestCheckWatchers(t *testing.T) {
	raw := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	set := func(key, v string, idx uint64) kv.Event {
		return kv.Event{Type: kv.EventSet, Key: key, Value: raw(v), Version: idx, Index: idx}
	}
	del := func(key string, idx uint64) kv.Event {
		return kv.Event{Type: kv.EventDelete, Key: key, Version: idx, Index: idx}
	}
	ops := []Op{
		{Kind: opPut, Key: "k01", Value: "a", Outcome: outOK, Version: 11},
		{Kind: opPut, Key: "k02", Value: "b", Outcome: outOK, Version: 12},
		{Kind: opDelete, Key: "k01", Outcome: outOK},
		{Kind: opPut, Key: "k03", Value: "refused", Outcome: outFail},
	}
	good := []kv.Event{set("k01", "a", 11), set("k02", "b", 12), del("k01", 13)}
	listing := []listedItem{{Key: "k02", Value: raw("b"), Version: 12}}
	mk := func(evs ...[]kv.Event) *watchers {
		ws := &watchers{}
		for i, e := range evs {
			ws.list = append(ws.list, &watcher{node: string(rune('a' + i)), events: e, first: 10, progress: 13})
		}
		return ws
	}
	if rep := checkWatchers(mk(good, good), ops, listing, 13, time.Now()); len(rep.Problems) != 0 || rep.Events != 6 {
		t.Fatalf("clean deliveries: %+v", rep)
	}
	for _, c := range []struct {
		name string
		evs  []kv.Event
		want string
	}{
		{"gap", []kv.Event{set("k02", "b", 12), del("k01", 13)}, "not delivered (gap)"},
		{"duplicate", []kv.Event{set("k01", "a", 11), set("k01", "a", 11), set("k02", "b", 12), del("k01", 13)}, "delivered twice"},
		{"reordered", []kv.Event{set("k02", "b", 12), set("k01", "a", 11), del("k01", 13)}, "reordered"},
		{"uncommitted", append(append([]kv.Event{}, good...), set("k03", "refused", 14)), "whose write was refused"},
		{"missed delete", good[:2], "still has k01"},
	} {
		rep := checkWatchers(mk(c.evs, good), ops, listing, 13, time.Now())
		if !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
			t.Errorf("%s: problems %q, want one saying %q", c.name, rep.Problems, c.want)
		}
		if c.name == "gap" && !strings.Contains(strings.Join(rep.Problems, "\n"), "disagree") {
			t.Errorf("gap: watchers not reported as disagreeing: %q", rep.Problems)
		}
	}

	// The listing is read after the final index but may precede a later
	// expiry that the watchers delivered before they stopped: k02 listed at
	// version 12, expired at 14 > final 13, is consistent. Expired at or
	// before the final index, or deleted, it contradicts the listing.
	expire := func(key string, idx uint64) kv.Event {
		return kv.Event{Type: kv.EventExpire, Key: key, Version: idx, Index: idx}
	}
	late := append(append([]kv.Event{}, good...), expire("k02", 14))
	for _, c := range []struct {
		name  string
		evs   []kv.Event
		final uint64
		ok    bool
	}{
		{"expiry after the final index", late, 13, true},
		{"expiry at the final index", late, 14, false},
		{"delete after the final index", append(append([]kv.Event{}, good...), del("k02", 14)), 13, false},
	} {
		ws := mk(c.evs, c.evs)
		for _, w := range ws.list {
			w.progress = 14
		}
		rep := checkWatchers(ws, ops, listing, c.final, time.Now())
		bad := strings.Contains(strings.Join(rep.Problems, "\n"), "final state of k02")
		if bad == c.ok {
			t.Errorf("%s: problems %q", c.name, rep.Problems)
		}
	}
}
