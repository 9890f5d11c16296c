package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the node's concurrent loggers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged starts a single node wired as main does, with JSON logs at
// debug level captured, and stops it at the end of the test.
func startLogged(t *testing.T, extra ...string) (base string, logs *syncBuffer) {
	t.Helper()
	args := append([]string{"--data-dir", t.TempDir(), "--api-key", "secret",
		"--log-format", "json", "--log-level", "debug", "--id", "m1"}, extra...)
	logs = &syncBuffer{}
	n, _ := startTestNode(t, logs, args...)
	return "http://" + n.httpAddr, logs
}

func get(t *testing.T, url, auth string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// metricValue returns the value on the exposition line that starts with series.
func metricValue(body, series string) (string, bool) {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

func TestMetricsEndpointOfAWiredNode(t *testing.T) {
	base, _ := startLogged(t)
	if code, body := do(t, "PUT", base+"/kv/items/a", `{"value": "12345"}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if resp, _ := get(t, base+"/metrics", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a key: %d", resp.StatusCode)
	}
	resp, body := get(t, base+"/metrics", "Bearer secret")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for series, want := range map[string]string{
		`quorumkv_fsm_keys`:                   "1",
		`quorumkv_fsm_value_bytes`:            "7",
		`quorumkv_raft_state{state="leader"}`: "1",
		`quorumkv_http_requests_total{method="PUT",route="/kv/items/{key}",status="201"}`:        "1",
		`quorumkv_raft_proposals_total{op="set"}`:                                                "1",
		`quorumkv_build_info{goversion="` + runtime.Version() + `",revision="",version="devel"}`: "1",
	} {
		if got, ok := metricValue(body, series); got != want {
			t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "quorumkv_raft_apply_duration_seconds_bucket", "quorumkv_raft_term",
		"quorumkv_fsm_applied_index", "quorumkv_raft_commit_index", "quorumkv_http_request_duration_seconds_bucket"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("no %s in /metrics", name)
		}
	}
}

func TestMetricsPublicFlag(t *testing.T) {
	base, _ := startLogged(t, "--metrics-public")
	if resp, body := get(t, base+"/metrics", ""); resp.StatusCode != 200 || !strings.Contains(body, "quorumkv_raft_term") {
		t.Fatalf("GET /metrics without a key under --metrics-public: %d", resp.StatusCode)
	}
	if resp, _ := get(t, base+"/cluster/status", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("--metrics-public opened /cluster/status: %d", resp.StatusCode)
	}
	if _, err := parseFlags([]string{"--log-requests", "some"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("--log-requests some accepted")
	}
}

// TestEveryLogLineNamesNodeAndComponent reads every JSON line a node writes
// through start, traffic and a graceful stop (debug level, so raft's and the
// transport's chatter is included).
func TestEveryLogLineNamesNodeAndComponent(t *testing.T) {
	base, logs := startLogged(t, "--log-requests", "all")
	resp, _ := get(t, base+"/kv/items/nope", "Bearer secret", "X-Request-Id", "trace-42")
	if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "trace-42" {
		t.Fatalf("GET: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	get(t, base+"/healthz", "")
	t.Cleanup(func() { // after the node's stop (cleanups run last-in first-out)
		components := map[string]bool{}
		var request map[string]any
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Errorf("not a JSON log line: %q", sc.Text())
				continue
			}
			c, _ := line["component"].(string)
			if line["node"] != "m1" || c == "" {
				t.Errorf("log line without node or component: %s", sc.Text())
			}
			components[c] = true
			if line["request_id"] == "trace-42" {
				request = line
			}
		}
		for _, c := range []string{"kvnode", "store", "raft", "transport", "httpapi"} {
			if !components[c] {
				t.Errorf("no log line from component %s (saw %v)", c, components)
			}
		}
		if request == nil || request["level"] != "INFO" || request["msg"] != "request" || request["method"] != "GET" ||
			request["route"] != "/kv/items/{key}" || request["status"] != 404.0 || request["key"] != "default" || request["latency_ms"] == nil {
			t.Errorf("request log line = %v", request)
		}
	})
}
