package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClockOffsetNeverLosesData runs, against three kvnode processes from
// scripts/cluster.sh, the sequence that once lost a key and broke
// exactly-once: a TTL key and a keyed increment, then one node restarted with
// its clock 20 minutes ahead (KV_TEST_CLOCK_OFFSET, the fault-injection
// build) and offered leadership. The transfer must be refused, the node must
// report itself not ready, the key must stay readable on every node and the
// retried increment must return its original result. Then the same node,
// restarted with a correct clock and made leader, has its clock jump 20
// minutes forward while it leads: it must hand leadership over, and the test
// logs how long that took (the offset-detection time).
func TestClockOffsetNeverLosesData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	const (
		httpBase, peerBase = 23080, 23180
		key                = "clock-test-key"
	)
	dir := t.TempDir()
	root := repoRoot(t)
	script := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "cluster.sh")}, args...)...)
		cmd.Env = append(os.Environ(), append([]string{"KV_CLUSTER_DIR=" + dir, "KV_API_KEY=" + key,
			"KV_CLUSTER_HTTP_BASE=" + strconv.Itoa(httpBase), "KV_CLUSTER_PEER_BASE=" + strconv.Itoa(peerBase)}, env...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("cluster.sh %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("cluster.sh %s: %v", strings.Join(args, " "), err)
		}
	}
	t.Cleanup(func() { script(nil, "stop") })
	script(nil, "start")

	client := &http.Client{Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	url := func(n int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", httpBase+n, path) }
	call := func(method, u, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	leader := func(n int) string {
		_, body := call("GET", url(n, "/cluster/status"), "")
		var st struct {
			Data struct {
				LeaderID string `json:"leaderId"`
			} `json:"data"`
		}
		json.Unmarshal([]byte(body), &st)
		return st.Data.LeaderID
	}
	incr := func(n int) {
		t.Helper()
		code, body := call("POST", url(n, "/kv/items/ctr/incr"), "", "Idempotency-Key", "X1")
		if code != 200 || !strings.Contains(body, `"value":1,`) {
			t.Fatalf("keyed incr through n%d: %d %s, want the original value 1", n, code, body)
		}
	}
	checkData := func() {
		t.Helper()
		for n := 1; n <= 3; n++ {
			code, body := call("GET", url(n, "/kv/items/k600"), "")
			if code != 200 || !strings.Contains(body, `"value":"keep-me"`) {
				t.Fatalf("k600 on n%d: %d %s", n, code, body)
			}
			incr(n)
		}
	}
	// clockOf returns n3's clock as node n measures it.
	clockOf := func(n int, id string) (offsetMs float64, within, measured bool) {
		_, body := call("GET", url(n, "/cluster/nodes"), "")
		var nodes struct {
			Data struct {
				Nodes []struct {
					ID    string `json:"id"`
					Clock *struct {
						OffsetMs    float64 `json:"offsetMs"`
						WithinBound bool    `json:"withinBound"`
					} `json:"clock"`
				} `json:"nodes"`
			} `json:"data"`
		}
		json.Unmarshal([]byte(body), &nodes)
		for _, nd := range nodes.Data.Nodes {
			if nd.ID == id && nd.Clock != nil {
				return nd.Clock.OffsetMs, nd.Clock.WithinBound, true
			}
		}
		return 0, false, false
	}

	if code, body := call("PUT", url(1, "/kv/items/k600"), `{"value":"keep-me","ttlSeconds":600}`); code != 201 {
		t.Fatalf("PUT k600: %d %s", code, body)
	}
	incr(1)
	// n3 must not be the leader when it comes back skewed: then every
	// refusal below is the cluster's decision, not an accident of timing.
	if leader(1) == "n3" {
		if code, body := call("POST", url(1, "/cluster/leader/transfer"), `{"id":"n1"}`); code != 200 {
			t.Fatalf("transfer to n1: %d %s", code, body)
		}
	}

	script([]string{"KV_TEST_CLOCK_OFFSET=20m"}, "restart", "3")
	poll(15*time.Second, "the leader to measure n3 20 minutes ahead", func() bool {
		l := leader(1)
		if l == "" || l == "n3" {
			return false
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(l, "n"))
		off, within, ok := clockOf(n, "n3")
		return ok && !within && off > 19*60*1000 && off < 21*60*1000
	})
	for _, via := range []int{1, 2, 3} {
		code, body := call("POST", url(via, "/cluster/leader/transfer"), `{"id":"n3"}`)
		if code != 503 || !strings.Contains(body, `"code":"clock_offset"`) {
			t.Fatalf("transfer to the skewed n3 via n%d: %d %s, want 503 clock_offset", via, code, body)
		}
	}
	if l := leader(1); l == "n3" || l == "" {
		t.Fatalf("leader after the refused transfers: %q", l)
	}
	poll(10*time.Second, "n3 to report not ready for its clock", func() bool {
		code, body := call("GET", url(3, "/readyz"), "")
		return code == 503 && strings.Contains(body, `"code":"clock_offset"`)
	})
	if code, body := call("GET", url(3, "/metrics"), ""); code != 200 || !metricNear(body, `quorumkv_clock_offset_seconds{peer="n1"}`, -1200, 10) ||
		!strings.Contains(body, "quorumkv_clock_within_bound 0") {
		t.Fatalf("n3's metrics do not show its offset:\n%s", grepLines(body, "quorumkv_clock"))
	}
	checkData()

	// n3 back with a correct clock (still the fault-injection build, so its
	// clock can be moved by its offset file), made leader, then its clock
	// jumps 20 minutes forward under it.
	script([]string{"KV_TEST_CLOCK_OFFSET=0s"}, "restart", "3")
	poll(15*time.Second, "n3's clock within bound", func() bool {
		_, within, ok := clockOf(3, "n3")
		code, _ := call("GET", url(3, "/readyz"), "")
		return ok && within && code == 200
	})
	poll(15*time.Second, "leadership on n3", func() bool {
		call("POST", url(1, "/cluster/leader/transfer"), `{"id":"n3"}`)
		return leader(1) == "n3" && leader(3) == "n3"
	})
	checkData()
	jumped := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "n3", "data", "test-clock-offset"), []byte("20m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll(15*time.Second, "leadership to leave n3 after its clock jumped", func() bool {
		l := leader(1)
		return l != "" && l != "n3" && leader(2) == l
	})
	t.Logf("offset-detection time: n3's clock jumped 20m while leading; leadership moved after %s (includes up to 50ms for the node to read its offset file, and the status polling)",
		time.Since(jumped).Round(time.Millisecond))
	checkData()
}

// metricNear reports whether the sample named series (name and labels) in
// a Prometheus text exposition is within tolerance of want.
func metricNear(body, series string, want, tolerance float64) bool {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f > want-tolerance && f < want+tolerance
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
