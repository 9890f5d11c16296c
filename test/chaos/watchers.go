package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	kv "github.com/quorumkv/quorumkv/client"
)

// watchers run Go-client watches of every key (one starting on each node,
// failing over to the others) alongside the workload, and record what each
// delivered. checkWatchers compares the deliveries with each other, with the
// history and with the final state.
type watchers struct {
	list   []*watcher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type watcher struct {
	node string
	mu   sync.Mutex
	// events delivered (changes and resets), in delivery order.
	events []kv.Event
	// first and last progress index seen; resets counts EventReset.
	first, progress uint64
	resets          int
	compacted       int
	err             error
}

func startWatchers(nodes []*node, apiKey string) (*watchers, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ws := &watchers{cancel: cancel}
	for i := range nodes {
		c, err := nodeClient(nodes, i, apiKey, 2*time.Second,
			kv.RetryPolicy{MaxAttempts: 60, BaseDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond})
		if err != nil {
			cancel()
			return nil, err
		}
		w := &watcher{node: nodes[i].id}
		ws.list = append(ws.list, w)
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			w.run(ctx, c)
		}()
	}
	// Each has reported its start before the workload begins.
	deadline := time.Now().Add(20 * time.Second)
	for _, w := range ws.list {
		for w.progressIndex() == 0 {
			if time.Now().After(deadline) {
				ws.stop()
				return nil, fmt.Errorf("watcher on %s did not start within 20s", w.node)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ws, nil
}

// nodeClient is a Go client that starts on nodes[i] and fails over to the
// others in turn.
func nodeClient(nodes []*node, i int, apiKey string, timeout time.Duration, retry kv.RetryPolicy) (*kv.Client, error) {
	var eps []string
	for j := range nodes {
		eps = append(eps, nodes[(i+j)%len(nodes)].httpBase())
	}
	return kv.New(kv.Config{Endpoints: eps, APIKey: apiKey, Timeout: timeout, Retry: retry})
}

// run watches until ctx ends. A watch that gives up (every node down for
// long) resumes from the last index delivered; a compacted history starts
// over from now, counted (the checks then skip that watcher's final state).
func (w *watcher) run(ctx context.Context, c *kv.Client) {
	var from uint64
	for ctx.Err() == nil {
		for ev, err := range c.Watch(ctx, "", kv.WatchOptions{FromIndex: from, Progress: true, IdleTimeout: 3 * time.Second}) {
			if err != nil {
				w.mu.Lock()
				if errors.Is(err, kv.ErrCompacted) {
					w.compacted++
					from = 0
				} else if ctx.Err() == nil {
					w.err = err
				}
				w.mu.Unlock()
				break
			}
			w.mu.Lock()
			switch ev.Type {
			case kv.EventProgress:
				if w.first == 0 {
					w.first = ev.Index
				}
				w.progress = max(w.progress, ev.Index)
			case kv.EventReset:
				w.resets++
				w.events = append(w.events, ev)
			default:
				w.events = append(w.events, ev)
				w.progress = max(w.progress, ev.Index)
			}
			from = w.progress
			w.mu.Unlock()
		}
	}
}

func (w *watcher) progressIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.progress
}

// stop waits for every watcher to reach index (or gives up after within),
// then ends them. It returns the watchers that did not get there.
func (ws *watchers) stopAt(index uint64, within time.Duration) []string {
	var late []string
	deadline := time.Now().Add(within)
	for _, w := range ws.list {
		for w.progressIndex() < index && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p := w.progressIndex(); p < index {
			late = append(late, fmt.Sprintf("watcher starting on %s stopped at index %d, the log reached %d", w.node, p, index))
		}
	}
	ws.stop()
	return late
}

func (ws *watchers) stop() {
	ws.cancel()
	ws.wg.Wait()
}

// watchReport is what the watch checks found.
type watchReport struct {
	Watchers  int      `json:"watchers"`
	Events    int      `json:"eventsChecked"`
	Resets    int      `json:"resets"`
	Compacted int      `json:"compacted"`
	Problems  []string `json:"problems,omitempty"`
}

// checkWatchers checks each watcher's deliveries: strictly in log order (no
// duplicate: no key twice at one index, indexes never decrease), no set of a
// value no client wrote or whose write was refused (nothing uncommitted),
// every acknowledged put within the watcher's span delivered at its index (no
// gap), the same sequence as every other watcher over the indexes both
// covered, and, replayed, the final state (listing: every live key after
// healing, with values and versions; now: the check's clock for keys whose
// TTL has passed but whose expire event has not come yet; final: the applied
// index read just before the listing, so a key the listing shows may have
// expired in an entry after it, which watchers delivered before they stopped).
func checkWatchers(ws *watchers, ops []Op, listing []listedItem, final uint64, now time.Time) watchReport {
	rep := watchReport{Watchers: len(ws.list)}
	written := map[string]Op{} // value written (JSON) → put
	for _, op := range ops {
		if op.Kind == opPut {
			v, _ := json.Marshal(op.Value)
			written[string(v)] = op
		}
	}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < 50 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	for _, w := range ws.list {
		rep.Events += len(w.events)
		rep.Resets += w.resets
		rep.Compacted += w.compacted
		if w.err != nil {
			problem("watcher starting on %s gave up: %v", w.node, w.err)
		}
		type at struct {
			index uint64
			key   string
		}
		seen := map[at]bool{}
		delivered := map[at]kv.Event{}
		var last uint64
		for _, ev := range w.events {
			if ev.Index < last {
				problem("%s: event %s %s@%d after index %d (reordered)", w.node, ev.Type, ev.Key, ev.Index, last)
			}
			last = ev.Index
			k := at{ev.Index, ev.Key}
			if seen[k] {
				problem("%s: event %s %s@%d delivered twice", w.node, ev.Type, ev.Key, ev.Index)
			}
			seen[k] = true
			delivered[k] = ev
			if ev.Type == kv.EventSet && classOf(ev.Key) != "" && (classOf(ev.Key) != classReg || len(ev.Key) == 3) {
				op, ok := written[string(ev.Value)]
				switch {
				case !ok:
					problem("%s: set %s@%d of value %s, which no client wrote", w.node, ev.Key, ev.Index, ev.Value)
				case op.Key != ev.Key:
					problem("%s: set %s@%d of value %s, written to %s", w.node, ev.Key, ev.Index, ev.Value, op.Key)
				case op.Outcome == outFail || op.Precond:
					problem("%s: set %s@%d of value %s, whose write was refused (%s)", w.node, ev.Key, ev.Index, ev.Value, op.Code)
				}
			}
		}
		if w.resets > 0 || w.compacted > 0 {
			continue // its stream started over: the gap and final-state checks do not apply
		}
		for _, op := range ops {
			if op.Kind != opPut || op.Outcome != outOK || op.Version <= w.first || op.Version > w.progress {
				continue
			}
			ev, ok := delivered[at{op.Version, op.Key}]
			v, _ := json.Marshal(op.Value)
			if !ok || ev.Type != kv.EventSet || !bytes.Equal(ev.Value, v) {
				problem("%s: acknowledged put %s=%s at index %d not delivered (gap)", w.node, op.Key, v, op.Version)
			}
		}
		state := map[string]kv.Event{}
		// expiredLate: keys whose last event is an expiry in an entry after
		// final, with the set it ended. The listing was read at or after
		// final but possibly before that entry, so it may still show the
		// set; a delete, or an expiry at or before final, has no such excuse.
		expiredLate := map[string]kv.Event{}
		for _, ev := range w.events {
			switch {
			case ev.Type == kv.EventSet:
				state[ev.Key] = ev
				delete(expiredLate, ev.Key)
			case ev.Type == kv.EventExpire && ev.Index > final:
				if prev, ok := state[ev.Key]; ok {
					expiredLate[ev.Key] = prev
				}
				delete(state, ev.Key)
			default:
				delete(state, ev.Key)
				delete(expiredLate, ev.Key)
			}
		}
		live := map[string]listedItem{}
		for _, it := range listing {
			live[it.Key] = it
			ev, ok := state[it.Key]
			if !ok {
				if prev, late := expiredLate[it.Key]; late && prev.Version == it.Version && bytes.Equal(prev.Value, it.Value) {
					continue
				}
			}
			if !ok || ev.Version != it.Version || !bytes.Equal(ev.Value, it.Value) {
				problem("%s: final state of %s: watch replay has %s@%d, the cluster %s@%d", w.node, it.Key, ev.Value, ev.Version, it.Value, it.Version)
			}
		}
		for k, ev := range state {
			if _, ok := live[k]; !ok && (ev.ExpiresAt.IsZero() || ev.ExpiresAt.After(now)) {
				problem("%s: watch replay still has %s@%d (not expired), the cluster does not", w.node, k, ev.Version)
			}
		}
	}
	// Every pair agrees over the indexes both covered.
	for i := 1; i < len(ws.list); i++ {
		a, b := ws.list[0], ws.list[i]
		if a.resets+a.compacted+b.resets+b.compacted > 0 {
			continue
		}
		lo, hi := max(a.first, b.first), min(a.progress, b.progress)
		if d := diffSpan(a.events, b.events, lo, hi); d != "" {
			problem("watchers starting on %s and %s disagree over (%d, %d]: %s", a.node, b.node, lo, hi, d)
		}
	}
	sort.Strings(rep.Problems)
	return rep
}

// diffSpan compares two deliveries over the indexes in (lo, hi].
func diffSpan(a, b []kv.Event, lo, hi uint64) string {
	pick := func(evs []kv.Event) []string {
		var out []string
		for _, ev := range evs {
			if ev.Index > lo && ev.Index <= hi && ev.Type != kv.EventReset {
				out = append(out, fmt.Sprintf("%s %s@%d=%s", ev.Type, ev.Key, ev.Index, ev.Value))
			}
		}
		return out
	}
	pa, pb := pick(a), pick(b)
	for i := 0; i < min(len(pa), len(pb)); i++ {
		if pa[i] != pb[i] {
			return fmt.Sprintf("event %d: %s vs %s", i, pa[i], pb[i])
		}
	}
	if len(pa) != len(pb) {
		return fmt.Sprintf("%d events vs %d", len(pa), len(pb))
	}
	return ""
}

// finishWatchers reads the final state after healing (the highest applied
// index, then a linearizable listing), lets every watcher reach that index
// and checks them.
func finishWatchers(api *apiClient, nodes []*node, ws *watchers, ops []Op) watchReport {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var final uint64
	var listing []listedItem
	var listErr error = errors.New("no node answered")
	// Every node's applied index first, then the listing: a linearizable
	// listing that starts after the last status reflects every entry up to
	// final, which the final-state check relies on. (Reading a node's status
	// after the listing could give a final index past the listing's.)
	for _, n := range nodes {
		if !n.running() {
			continue
		}
		if st, err := api.status(ctx, n.httpBase()); err == nil {
			final = max(final, st.AppliedIndex)
		}
	}
	for _, n := range nodes {
		if n.running() && listErr != nil {
			listing, listErr = api.listAll(ctx, n.httpBase(), "")
		}
	}
	now := time.Now()
	late := ws.stopAt(final, 30*time.Second)
	if listErr != nil {
		return watchReport{Watchers: len(ws.list), Problems: []string{"final listing for the watch check failed: " + listErr.Error()}}
	}
	rep := checkWatchers(ws, ops, listing, final, now)
	rep.Problems = append(late, rep.Problems...)
	return rep
}
