package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKV is an in-memory server speaking the part of quorumkv's API kvbench
// uses, counting what it was sent.
type fakeKV struct {
	withIncr bool
	// stall, when set, blocks every request while it is open.
	stall chan struct{}

	mu     sync.Mutex
	items  map[string][]byte
	method map[string]int
	puts   map[string]int // PUTs per key
	ttls   map[string]bool
	bad    []string // requests the fake could not accept
}

func newFakeKV(t *testing.T, withIncr bool) (*fakeKV, string) {
	f := &fakeKV{withIncr: withIncr, items: map[string][]byte{}, method: map[string]int{}, puts: map[string]int{}, ttls: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeKV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s := f.stall
	f.mu.Unlock()
	if s != nil {
		<-s
	}
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"`+code+`","message":"fake","retryable":false}}`)
	}
	if r.Header.Get("Authorization") != "Bearer k" {
		fail(401, "unauthorized")
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/kv/items/")
	if !ok {
		fail(404, "not_found")
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.method[r.Method]++
	if k, isIncr := strings.CutSuffix(key, "/incr"); isIncr {
		if !f.withIncr {
			fail(405, "method_not_allowed")
			return
		}
		n, _ := strconv.Atoi(string(f.items[k]))
		f.items[k] = []byte(strconv.Itoa(n + 1))
		io.WriteString(w, `{"data":{"key":"`+k+`","value":`+string(f.items[k])+`}}`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		v, ok := f.items[key]
		if !ok {
			fail(404, "not_found")
			return
		}
		io.WriteString(w, `{"data":{"key":"`+key+`","value":`+string(v)+`}}`)
	case http.MethodPut:
		var req struct {
			Value json.RawMessage `json:"value"`
			TTL   *float64        `json:"ttlSeconds"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Value == nil || r.Header.Get("Content-Type") != "application/json" {
			f.bad = append(f.bad, string(body))
			fail(400, "invalid_json")
			return
		}
		_, existed := f.items[key]
		f.items[key] = req.Value
		f.puts[key]++
		f.ttls[key] = req.TTL != nil
		if !existed {
			w.WriteHeader(201)
		}
		io.WriteString(w, `{"data":{"key":"`+key+`"}}`)
	default:
		fail(405, "method_not_allowed")
	}
}

func (f *fakeKV) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.method[method]
}

// runJSON runs kvbench with args (plus -o json and the fake's key) and decodes its report.
func runJSON(t *testing.T, args ...string) *result {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "KV_API_KEY" {
			return "k"
		}
		return ""
	}
	if code := run(append(args, "-o", "json"), env, &out, &errOut); code != 0 {
		t.Fatalf("kvbench %v: exit %d: %s", args, code, errOut.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	return &r
}

func short(url string, workload string, extra ...string) []string {
	return append([]string{"-endpoints", url, "-workload", workload, "-c", "4", "-d", "400ms", "-warmup", "100ms", "-keys", "50", "-seed", "7"}, extra...)
}

func TestSessionMixesReadsAndWritesWithTTL(t *testing.T) {
	f, url := newFakeKV(t, false)
	r := runJSON(t, short(url, "session", "-preload")...)
	if r.Total.Errors != 0 || len(r.Errors) != 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	get, put := r.Ops["get"], r.Ops["put"]
	if get.Requests == 0 || put.Requests == 0 {
		t.Fatalf("ops %+v", r.Ops)
	}
	if frac := float64(get.Requests) / float64(r.Total.Requests); frac < 0.8 || frac > 0.97 {
		t.Errorf("GET share %.2f, want about 0.9", frac)
	}
	if get.Misses != 0 {
		t.Errorf("%d misses after preload", get.Misses)
	}
	if r.Preload == nil || r.Preload.Keys != 50 || len(f.puts) != 50 {
		t.Errorf("preload %+v wrote %d keys, want 50", r.Preload, len(f.puts))
	}
	for k, hasTTL := range f.ttls {
		if !hasTTL {
			t.Errorf("PUT %s without ttlSeconds", k)
		}
	}
	if len(f.bad) > 0 {
		t.Errorf("fake rejected bodies: %q", f.bad[0])
	}
	if r.Total.Rate <= 0 || r.Total.Latency.P50 <= 0 || r.Total.Latency.Max < r.Total.Latency.P99 {
		t.Errorf("implausible summary %+v", r.Total)
	}
}

func TestPreloadOnlyWritesEveryKeyOnceAndStops(t *testing.T) {
	f, url := newFakeKV(t, false)
	r := runJSON(t, short(url, "session", "-preload-only")...)
	if r.Preload == nil || r.Preload.Keys != 50 || len(r.Ops) != 0 || f.count("GET") != 0 || f.count("PUT") != 50 {
		t.Fatalf("preload-only: %+v, %d GETs, %d PUTs", r, f.count("GET"), f.count("PUT"))
	}
}

func TestCacheAsideFillsEachMissOnce(t *testing.T) {
	f, url := newFakeKV(t, false)
	r := runJSON(t, short(url, "cache-aside")...)
	get, put := r.Ops["get"], r.Ops["put"]
	if r.Total.Errors != 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	// Warmup already fills part of the key space; in the measured window
	// every miss, and only a miss, is followed by a PUT.
	if put.Requests != get.Misses {
		t.Errorf("%d PUTs for %d misses", put.Requests, get.Misses)
	}
	if f.count("PUT") > 50+4 { // a key can be missed by two workers at once
		t.Errorf("%d PUTs for 50 keys: cache-aside refills hits", f.count("PUT"))
	}
	if get.Requests <= get.Misses {
		t.Errorf("no hits: %+v", get)
	}
}

func TestReadCountsMissesAsErrorsWithoutPreload(t *testing.T) {
	_, url := newFakeKV(t, false)
	r := runJSON(t, short(url, "read")...)
	if r.Total.Errors == 0 || r.Total.Errors != r.Ops["get"].Misses {
		t.Fatalf("read on an empty store: %+v", r.Total)
	}
	if _, ok := r.Ops["put"]; ok {
		t.Error("read workload sent PUTs")
	}
	if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0].Error, "404 not_found") {
		t.Errorf("errors %+v", r.Errors)
	}
}

func TestWriteAndReadAfterPreload(t *testing.T) {
	f, url := newFakeKV(t, false)
	if r := runJSON(t, short(url, "write")...); r.Total.Errors != 0 || r.Ops["put"].Requests == 0 || r.Ops["get"].Requests != 0 {
		t.Fatalf("write: %+v", r.Ops)
	}
	r := runJSON(t, short(url, "read", "-preload")...)
	if r.Total.Errors != 0 || r.Ops["get"].OK != r.Ops["get"].Requests {
		t.Fatalf("read after preload: %+v %+v", r.Total, r.Errors)
	}
	for k, n := range f.puts {
		if n == 0 {
			t.Errorf("key %s never written", k)
		}
	}
}

func TestCounterReportsAMissingIncrRoute(t *testing.T) {
	_, url := newFakeKV(t, false)
	r := runJSON(t, short(url, "counter")...)
	incr := r.Ops["incr"]
	if incr.Requests == 0 || incr.Errors != incr.Requests {
		t.Fatalf("incr %+v", incr)
	}
	if len(r.Errors) != 1 || r.Errors[0].Error != "405 method_not_allowed" || r.Errors[0].Op != "incr" {
		t.Errorf("errors %+v", r.Errors)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "no incr route") {
		t.Errorf("notes %q", r.Notes)
	}
	// The table says so too.
	var out bytes.Buffer
	if err := writeTable(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"405 method_not_allowed", "no incr route", "incr"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCounterIncrements(t *testing.T) {
	f, url := newFakeKV(t, true)
	r := runJSON(t, short(url, "counter")...)
	if r.Total.Errors != 0 || r.Ops["incr"].OK == 0 {
		t.Fatalf("counter: %+v %+v", r.Ops, r.Errors)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := 0
	for k, v := range f.items {
		if !strings.HasPrefix(k, "counter-") {
			t.Errorf("counter key %q", k)
		}
		n, _ := strconv.Atoi(string(v))
		sum += n
	}
	if uint64(sum) < r.Ops["incr"].OK { // warmup incrs add to the sum too
		t.Errorf("counters sum to %d, fewer than %d acknowledged incrs", sum, r.Ops["incr"].OK)
	}
}

func TestUnauthorizedIsAnErrorByCode(t *testing.T) {
	_, url := newFakeKV(t, false)
	var out, errOut bytes.Buffer
	code := run(append(short(url, "write"), "-api-key", "wrong", "-o", "json"), func(string) string { return "" }, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Errors) != 1 || r.Errors[0].Error != "401 unauthorized" {
		t.Fatalf("report %s (%v)", out.String(), err)
	}
}

func TestPreloadFailureFailsTheRun(t *testing.T) {
	_, url := newFakeKV(t, false)
	var out, errOut bytes.Buffer
	code := run(append(short(url, "read"), "-preload", "-api-key", "wrong"), func(string) string { return "" }, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "401 unauthorized") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestEndpointsRoundRobinAndPinned(t *testing.T) {
	f1, u1 := newFakeKV(t, false)
	f2, u2 := newFakeKV(t, false)
	eps := u1 + "," + u2
	runJSON(t, short(eps, "write", "-endpoint-mode", "roundrobin", "-c", "1")...)
	a, b := f1.count("PUT"), f2.count("PUT")
	if a == 0 || b == 0 || a-b > 1 || b-a > 1 {
		t.Errorf("round robin with one worker: %d and %d PUTs", a, b)
	}
	f3, u3 := newFakeKV(t, false)
	f4, u4 := newFakeKV(t, false)
	runJSON(t, short(u3+","+u4, "write", "-c", "1")...) // pinned: worker 0 uses the first
	if f3.count("PUT") == 0 || f4.count("PUT") != 0 {
		t.Errorf("pinned with one worker: %d and %d PUTs", f3.count("PUT"), f4.count("PUT"))
	}
}

// TestOpenLoopChargesStallsToDelayedRequests is the coordinated-omission
// check: the server stalls for 600 ms mid-run. An open-loop run charges the
// wait to every request scheduled during the stall; a closed-loop run with
// one worker sees only the one request that hit it.
func TestOpenLoopChargesStallsToDelayedRequests(t *testing.T) {
	stalled := func() (*fakeKV, string) {
		f, url := newFakeKV(t, false)
		f.stall = make(chan struct{})
		close(f.stall) // open: requests pass
		return f, url
	}
	stallAt := func(f *fakeKV) {
		time.AfterFunc(700*time.Millisecond, func() {
			s := make(chan struct{})
			f.mu.Lock()
			f.stall = s
			f.mu.Unlock()
			time.AfterFunc(600*time.Millisecond, func() { close(s) })
		})
	}
	args := func(url string, extra ...string) []string {
		return append([]string{"-endpoints", url, "-workload", "write", "-c", "1", "-d", "2s", "-warmup", "0s", "-keys", "10"}, extra...)
	}

	f, url := stalled()
	stallAt(f)
	open := runJSON(t, args(url, "-rate", "200")...)
	if n := open.Total.Requests + open.Unsent; n < 300 || n > 420 {
		t.Errorf("open loop at 200/s for 2s: %d requests sent + %d unsent, want about 400", open.Total.Requests, open.Unsent)
	}
	// About 120 requests were due during the stall: >25 % of the run waited
	// on it, most of them far longer than 50 ms.
	if open.Total.Latency.P90 < 50 || open.Total.Latency.Max < 500 {
		t.Errorf("open loop hides the stall: %+v", open.Total.Latency)
	}

	f, url = stalled()
	stallAt(f)
	closed := runJSON(t, args(url)...)
	if closed.Total.Latency.Max < 500 || closed.Total.Latency.P90 > 50 {
		t.Errorf("closed loop: want one slow request and a fast p90, got %+v", closed.Total.Latency)
	}
}

// fakeEtcd answers /v3/kv/put and /v3/kv/range like etcd's JSON gateway.
type fakeEtcd struct {
	mu           sync.Mutex
	kv           map[string]string
	serializable int
	bad          int
}

func (f *fakeEtcd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key          []byte `json:"key"` // encoding/json decodes base64 into []byte
		Value        []byte `json:"value"`
		Serializable bool   `json:"serializable"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Method != http.MethodPost {
		f.mu.Lock()
		f.bad++
		f.mu.Unlock()
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"bad","code":3,"message":"bad"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/v3/kv/put":
		if !json.Valid(req.Value) {
			f.bad++
		}
		f.kv[string(req.Key)] = string(req.Value)
		io.WriteString(w, `{"header":{"revision":"2"}}`)
	case "/v3/kv/range":
		if req.Serializable {
			f.serializable++
		}
		v, ok := f.kv[string(req.Key)]
		if !ok {
			io.WriteString(w, `{"header":{"revision":"2"}}`)
			return
		}
		io.WriteString(w, `{"header":{},"kvs":[{"key":"`+base64.StdEncoding.EncodeToString(req.Key)+`","value":"`+base64.StdEncoding.EncodeToString([]byte(v))+`"}],"count":"1"}`)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error":"nope","code":5,"message":"nope"}`)
	}
}

func TestEtcdTargetSpeaksTheJSONGateway(t *testing.T) {
	f := &fakeEtcd{kv: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	r := runJSON(t, short(srv.URL, "cache-aside", "-warmup", "0s", "-target", "etcd", "-consistency", "stale", "-value-size", "200")...)
	if r.Total.Errors != 0 || f.bad != 0 {
		t.Fatalf("errors %+v, bad requests %d", r.Errors, f.bad)
	}
	if r.Ops["get"].Misses == 0 || r.Ops["put"].Requests != r.Ops["get"].Misses {
		t.Errorf("cache-aside on etcd: %+v", r.Ops)
	}
	if f.serializable == 0 {
		t.Error("-consistency stale did not ask for serializable ranges")
	}
	for k, v := range f.kv {
		if !strings.HasPrefix(k, "bench/session-") || len(v) != 200 {
			t.Errorf("stored %q = %d bytes, want bench/session-* with 200 bytes", k, len(v))
		}
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "no TTL") {
		t.Errorf("notes %q", r.Notes)
	}
}

func TestFlagValidation(t *testing.T) {
	for _, args := range [][]string{
		{"-workload", "nope"},
		{"-target", "etcd", "-workload", "counter"},
		{"-c", "0"},
		{"-endpoints", "127.0.0.1:8080"},
		{"-consistency", "serializable"},
		{"-o", "yaml"},
		{"extra"},
	} {
		var errOut bytes.Buffer
		if code := run(args, func(k string) string { return map[string]string{"KV_API_KEY": "k"}[k] }, io.Discard, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	var errOut bytes.Buffer
	if code := run([]string{"-d", "1s"}, func(string) string { return "" }, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "API key") {
		t.Errorf("no API key: exit %d %q", code, errOut.String())
	}
}

func TestValueHasTheRequestedSize(t *testing.T) {
	for _, size := range []int{1, 20, 200, 4096} {
		v := appendValue(nil, 12345, size)
		if !json.Valid(v) {
			t.Errorf("size %d: invalid JSON %s", size, v)
		}
		if size >= 20 && len(v) != size {
			t.Errorf("size %d: got %d bytes", size, len(v))
		}
	}
}

func TestTxnWorkloadRequest(t *testing.T) {
	c, err := parseFlags([]string{"-endpoints", "http://127.0.0.1:1", "-api-key", "k", "-workload", "txn", "-txn-ops", "4", "-ttl", "60"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tgt := newTarget(c)
	var body bytes.Buffer
	req, err := tgt.newRequest("http://n1", workload{name: c.workload}.first(nil), "session-7", 7, &body)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Ops []struct {
			Op, Key    string
			Value      json.RawMessage
			TTLSeconds float64
		}
	}
	if err := json.Unmarshal(body.Bytes(), &got); err != nil || req.URL.Path != "/kv/txn" || req.Method != "POST" {
		t.Fatalf("%s %s: %s (%v)", req.Method, req.URL, body.Bytes(), err)
	}
	if len(got.Ops) != 4 || got.Ops[3].Key != "session-7/3" || got.Ops[0].Op != "put" || got.Ops[0].TTLSeconds != 60 {
		t.Fatalf("ops %+v", got.Ops)
	}
}
