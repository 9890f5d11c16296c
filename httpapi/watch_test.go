package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/watch"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// parseSSE parses a whole event stream body.
func parseSSE(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != nil || cur.event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("data line %q is not JSON: %v", line, err)
			}
		case strings.HasPrefix(line, ":"):
		default:
			t.Fatalf("unexpected line %q in event stream", line)
		}
	}
	return out
}

// changes keeps the change events (no event: field), as "type key@index".
func changes(evs []sseEvent) string {
	var b strings.Builder
	for _, e := range evs {
		if e.event == "" {
			b.WriteString(e.data["type"].(string) + " " + e.data["key"].(string) + "@" + jsonNum(e.data["index"]) + "/" + e.id + " ")
		}
	}
	return b.String()
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func feed(st *fakeStore) {
	h := st.watchHub()
	h.Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "a/1", Value: []byte(`{"n":1}`), Version: 1, ExpiresAt: 1_800_000_000_000, Index: 1}}, 1)
	h.Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "b/1", Value: []byte(`2`), Version: 2, Index: 2}}, 2)
	h.Applied([]fsm.Change{
		{Type: fsm.ChangeDelete, Key: "a/1", Version: 3, Index: 3},
		{Type: fsm.ChangeDelete, Key: "a/2", Version: 3, Index: 3},
	}, 3)
	h.Applied([]fsm.Change{{Type: fsm.ChangeExpire, Key: "a/3", Version: 4, Index: 4}}, 4)
}

func TestWatchStream(t *testing.T) {
	e := newTestEnv(t, nil)
	feed(e.st)
	res := e.doH("GET", "/kv/watch?prefix=a/&fromIndex=0", "", "Bearer "+testAPIKey, nil)
	if res.status != http.StatusOK || res.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /kv/watch: %d %s %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	evs := parseSSE(t, res.body)
	// Only the last event of entry 3 carries its id.
	if got, want := changes(evs), "set a/1@1/1 delete a/1@3/ delete a/2@3/3 expire a/3@4/4 "; got != want {
		t.Fatalf("changes:\n got  %s\n want %s", got, want)
	}
	first := evs[0]
	if first.event != "progress" || first.id != "0" {
		t.Fatalf("first event %+v, want progress with id 0", first)
	}
	if v := evs[1].data; jsonNum(v["value"]) != `{"n":1}` || v["expiresAt"] != "2027-01-15T08:00:00.000Z" || jsonNum(v["version"]) != "1" {
		t.Fatalf("set event %v", v)
	}
	if _, ok := evs[2].data["value"]; ok {
		t.Fatalf("delete event has a value: %v", evs[2].data)
	}
	last := evs[len(evs)-1]
	if last.event != "closed" || last.data["reason"] != "max_duration" || jsonNum(last.data["lastIndex"]) != "4" || last.id != "4" {
		t.Fatalf("last event %+v, want closed max_duration at 4", last)
	}

	// Last-Event-ID from the middle: exactly the rest (and it wins over fromIndex).
	res = e.doH("GET", "/kv/watch?prefix=a/&fromIndex=0", "", "Bearer "+testAPIKey, map[string]string{"Last-Event-ID": "1"})
	if got, want := changes(parseSSE(t, res.body)), "delete a/1@3/ delete a/2@3/3 expire a/3@4/4 "; got != want {
		t.Fatalf("resumed:\n got  %s\n want %s", got, want)
	}
	// Without a start: only what follows; progress events while idle.
	res = e.doH("GET", "/kv/watch", "", "Bearer "+testAPIKey, nil)
	evs = parseSSE(t, res.body)
	if changes(evs) != "" || len(evs) < 3 || evs[1].event != "progress" || jsonNum(evs[1].data["index"]) != "4" {
		t.Fatalf("idle stream: %+v", evs)
	}
}

func TestWatchRefusals(t *testing.T) {
	e := newTestEnv(t, nil)
	e.st.hubConfig = watch.Config{MaxEntries: 2, MaxWatchers: 1}
	feed(e.st)
	res := e.do("GET", "/kv/watch?fromIndex=1", "", "Bearer "+testAPIKey)
	// Two changes held of five: index 3 is only partly held, so it is the
	// oldest start served.
	if body := wantError(t, res, http.StatusGone, "compacted"); body.OldestIndex == nil || *body.OldestIndex != 3 {
		t.Fatalf("410 body %s: want oldestIndex 3", res.body)
	}
	for _, bad := range []string{"fromIndex=x", "fromIndex=-1", "fromIndex=1&fromIndex=2", "consistency=maybe", "minIndex=3"} {
		wantError(t, e.do("GET", "/kv/watch?"+bad, "", "Bearer "+testAPIKey), http.StatusBadRequest, "invalid_parameter")
	}
	w, err := e.st.watchHub().Subscribe("", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res = e.do("GET", "/kv/watch", "", "Bearer "+testAPIKey)
	wantError(t, res, http.StatusServiceUnavailable, "overloaded")
	if res.header.Get("Retry-After") == "" {
		t.Fatal("503 overloaded without Retry-After")
	}
}

// TestWatchLaggingReaderIsClosed: a watcher more than its buffer behind and
// not catching up gets a final closed event with the index to resume from.
func TestWatchLaggingReaderIsClosed(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Watch.MaxDuration = 5 * time.Second })
	e.st.hubConfig = watch.Config{MaxEntries: 1000, WatcherBuffer: 10}
	h := e.st.watchHub()
	req, _ := http.NewRequest("GET", e.srv.URL+"/kv/watch?fromIndex=0", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read the first (progress) event, then stop reading while 500 changes
	// are applied: far more than the buffer, in one go.
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "event: progress\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	for i := uint64(1); i <= 500; i++ {
		h.Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "k", Value: []byte(`1`), Version: i, Index: i}}, i)
	}
	var rest bytes.Buffer
	if _, err := rest.ReadFrom(br); err != nil {
		t.Fatal(err)
	}
	evs := parseSSE(t, append([]byte("event: progress\n"), rest.Bytes()...))
	last := evs[len(evs)-1]
	if last.event != "closed" || last.data["reason"] != "lagging" {
		t.Fatalf("stream ended with %+v, want closed lagging (%d events)", last, len(evs))
	}
	if got := jsonNum(last.data["lastIndex"]); got != last.id || got == "500" {
		t.Fatalf("closed at lastIndex %s, id %s: want the index delivered so far", got, last.id)
	}
	if st := h.Stats(); st.ClosedForLag != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlockingRead(t *testing.T) {
	e := newTestEnv(t, nil)
	st := e.st
	st.watchHub().Applied(nil, 5)
	e.do("PUT", "/kv/items/k", `{"value":1}`, "Bearer "+testAPIKey)
	type answer struct {
		res  result
		took time.Duration
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		res := e.do("GET", "/kv/items/k?waitIndex=5&wait=20s", "", "Bearer "+testAPIKey)
		done <- answer{res, time.Since(start)}
	}()
	// A change to another key does not answer it; one to k does.
	waitFor(t, func() bool { return st.watchHub().Stats().Watchers == 1 })
	st.watchHub().Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "kk", Value: []byte(`1`), Version: 6, Index: 6}}, 6)
	select {
	case a := <-done:
		t.Fatalf("answered after a change to another key: %d %s", a.res.status, a.res.body)
	case <-time.After(100 * time.Millisecond):
	}
	st.watchHub().Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "k", Value: []byte(`1`), Version: 7, Index: 7}}, 7)
	a := <-done
	if a.res.status != http.StatusOK {
		t.Fatalf("blocking read: %d %s", a.res.status, a.res.body)
	}
	// The wait ends: the current state.
	res := e.do("GET", "/kv/items/k?waitIndex=7&wait=150ms", "", "Bearer "+testAPIKey)
	if res.status != http.StatusOK {
		t.Fatalf("after wait: %d %s", res.status, res.body)
	}
	for _, bad := range []string{"waitIndex=x", "waitIndex=1&wait=0s", "waitIndex=1&wait=1h", "wait=3s"} {
		wantError(t, e.do("GET", "/kv/items/k?"+bad, "", "Bearer "+testAPIKey), http.StatusBadRequest, "invalid_parameter")
	}
	// A missing key's 404 says where to wait from.
	res = e.do("GET", "/kv/items/nope?waitIndex=7&wait=100ms", "", "Bearer "+testAPIKey)
	if res.status != http.StatusNotFound || res.header.Get("X-KV-Index") != "7" {
		t.Fatalf("missing key: %d X-KV-Index %q", res.status, res.header.Get("X-KV-Index"))
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchStalledReaderIsCutOff: a client that stops reading its stream
// holds nothing up (the changes keep being applied) and is disconnected once
// a write to it has been blocked for WriteTimeout, which frees its slot.
func TestWatchStalledReaderIsCutOff(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.Watch = WatchConfig{MaxDuration: time.Minute, WriteTimeout: 200 * time.Millisecond, ProgressInterval: time.Second}
	})
	h := e.st.watchHub()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /kv/watch?fromIndex=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", testAPIKey)
	waitFor(t, func() bool { return h.Stats().Watchers == 1 })
	value := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	start := time.Now()
	for i := uint64(1); i <= 400; i++ { // 26 MB: far more than the socket buffers hold
		h.Applied([]fsm.Change{{Type: fsm.ChangeSet, Key: "k", Value: value, Version: i, Index: i}}, i)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("applying 400 changes with a stalled watcher took %s", d)
	}
	waitFor(t, func() bool { return h.Stats().Watchers == 0 })
}
