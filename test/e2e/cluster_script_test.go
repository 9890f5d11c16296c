//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterScript is the end-to-end smoke check of the operator's path: it
// starts a real three-node cluster with scripts/cluster.sh in a fresh
// directory with a generated key, drives the HTTP API of every node (health,
// authentication, create and replace, byte-exact big numbers, delete,
// cache-aside), kills the leader, writes through the survivors while a new
// leader is elected, restarts the killed node with cluster.sh and checks that
// every acknowledged write is readable from all three nodes and that
// `cluster.sh status` reports the cluster healthy. A failed check names the
// step, what was expected and what came back, and prints every node's log tail.
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	const httpBase, peerBase = 18080, 19080
	dir := t.TempDir()
	script := clusterScript(t, dir, httpBase, peerBase, "") // empty KV_API_KEY: cluster.sh generates one
	s := &smoke{t: t, dir: dir, httpBase: httpBase, expected: map[string]string{},
		client: &http.Client{Timeout: 15 * time.Second}}
	defer s.client.CloseIdleConnections()
	t.Cleanup(func() {
		if t.Failed() {
			s.logTails()
		}
	})

	s.step("starting the cluster in " + dir)
	script("start")
	keyFile := filepath.Join(dir, "api-key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the generated API key file %s: %v (mode %v), want mode 0600", keyFile, err, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(keyFile)
	s.key = strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s.key) {
		t.Fatalf("generated API key %q is not 32 random bytes in hex", s.key)
	}

	const sessionKey = "session-usr_abc123"
	const sessionValue = `{"userId":"usr_abc123","cart":[{"sku":"item_1","qty":2}],"lastActive":1764000000000}`
	const sessionBody = `{"value": {"userId": "usr_abc123", "cart": [{"sku": "item_1", "qty": 2}], "lastActive": 1764000000000}, "ttlSeconds": 86400}`
	// 2^63+1 overflows int64 and has no exact float64; a server that decodes
	// values into float64 would return 9223372036854775808 (or 9.223372036854776e+18).
	const bigValue = `{"id":9223372036854775809,"ids":[9223372036854775809,-9223372036854775809],"f":1.50}`

	for tn := 1; tn <= 3; tn++ {
		s.step(fmt.Sprintf("n%d: health and authentication", tn))
		s.req("none", "GET", tn, "/healthz", "").expect(200, "GET /healthz without a key")
		r := s.req("none", "GET", tn, "/kv/items/"+sessionKey, "").expect(401, "GET without Authorization")
		if r.field("error", "code") == "" {
			t.Fatalf("401 on n%d has no .error.code: %s", tn, r.body)
		}
		s.req("wrong", "GET", tn, "/kv/items/"+sessionKey, "").expect(401, "GET with a wrong key")
		s.req("none", "PUT", tn, "/kv/items/"+sessionKey, sessionBody).expect(401, "PUT without Authorization")

		s.step(fmt.Sprintf("n%d: PUT %s (create, then replace)", tn, sessionKey))
		r = s.req("key", "PUT", tn, "/kv/items/"+sessionKey, sessionBody).expect(201, "first PUT")
		if r.field("data", "key") != sessionKey {
			t.Fatalf("PUT on n%d: .data.key is %q", tn, r.field("data", "key"))
		}
		v1, err := strconv.ParseUint(r.field("data", "version"), 10, 64)
		if err != nil || v1 == 0 {
			t.Fatalf("PUT on n%d: .data.version is %q, want a positive integer", tn, r.field("data", "version"))
		}
		if r.field("data", "expiresAt") == "" {
			t.Fatalf("PUT with ttlSeconds on n%d: no .data.expiresAt: %s", tn, r.body)
		}
		r = s.req("key", "PUT", tn, "/kv/items/"+sessionKey, sessionBody).expect(200, "second PUT (replace)")
		v2, err := strconv.ParseUint(r.field("data", "version"), 10, 64)
		if err != nil || v2 <= v1 {
			t.Fatalf("replace on n%d: version %q is not above %d", tn, r.field("data", "version"), v1)
		}
		s.expected[sessionKey] = sessionValue

		s.step(fmt.Sprintf("n%d: GET %s from every node", tn, sessionKey))
		for n := 1; n <= 3; n++ {
			if got := s.checkKeyOn(n, sessionKey).field("data", "version"); got != strconv.FormatUint(v2, 10) {
				t.Fatalf("GET on n%d: version %s, want %d", n, got, v2)
			}
		}

		s.step(fmt.Sprintf("n%d: a value with 9223372036854775809 round-trips byte-exactly", tn))
		bigKey := fmt.Sprintf("bigint-via-n%d", tn)
		r = s.req("key", "PUT", tn, "/kv/items/"+bigKey, `{"value":`+bigValue+`}`).expect(201, "PUT "+bigKey)
		s.expected[bigKey] = bigValue
		if e := r.field("data", "expiresAt"); e != "" {
			t.Fatalf("PUT without ttlSeconds on n%d has expiresAt %s", tn, e)
		}
		for n := 1; n <= 3; n++ {
			s.checkKeyOn(n, bigKey)
		}

		s.step(fmt.Sprintf("n%d: DELETE %s (deleted, then not)", tn, sessionKey))
		if r = s.req("key", "DELETE", tn, "/kv/items/"+sessionKey, "").expect(200, "first DELETE"); r.field("data", "deleted") != "true" {
			t.Fatalf("first DELETE on n%d: want deleted true: %s", tn, r.body)
		}
		s.expected[sessionKey] = deleted
		if r = s.req("key", "DELETE", tn, "/kv/items/"+sessionKey, "").expect(200, "second DELETE"); r.field("data", "deleted") != "false" {
			t.Fatalf("second DELETE on n%d: want deleted false: %s", tn, r.body)
		}
		for n := 1; n <= 3; n++ {
			s.checkKeyOn(n, sessionKey)
		}

		s.step(fmt.Sprintf("n%d: cache-aside", tn))
		cacheKey := fmt.Sprintf("cache-k-via-n%d", tn)
		cacheValue := fmt.Sprintf(`{"rendered":"page-for-n%d","n":%d}`, tn, tn)
		if r = s.req("key", "GET", tn, "/kv/items/"+cacheKey, "").expect(404, "cache miss GET"); r.field("error", "code") == "" {
			t.Fatalf("404 on n%d has no .error.code: %s", tn, r.body)
		}
		s.req("key", "PUT", tn, "/kv/items/"+cacheKey, `{"value":`+cacheValue+`,"ttlSeconds":3600}`).expect(201, "cache fill PUT")
		s.expected[cacheKey] = cacheValue
		if s.checkKeyOn(tn, cacheKey).field("data", "expiresAt") == "" {
			t.Fatalf("cache hit on n%d: no .data.expiresAt", tn)
		}
	}

	s.step("finding the leader")
	leader := s.req("key", "GET", 1, "/cluster/status", "").expect(200, "GET /cluster/status").field("data", "leaderId")
	m := regexp.MustCompile(`^n([1-3])$`).FindStringSubmatch(leader)
	if m == nil {
		t.Fatalf("leaderId is %q, want n1, n2 or n3", leader)
	}
	var survivors []int
	for n := 1; n <= 3; n++ {
		if strconv.Itoa(n) != m[1] {
			survivors = append(survivors, n)
		}
	}

	s.step("killing the leader " + leader)
	script("kill", m[1])

	s.step("writes through the survivors while a new leader is elected")
	for _, n := range survivors {
		for i := 1; i <= 2; i++ {
			key := fmt.Sprintf("after-kill-via-n%d-%d", n, i)
			value := fmt.Sprintf(`{"via":"n%d","i":%d,"killed":"%s"}`, n, i, leader)
			r := s.reqRetry("key", "PUT", n, "/kv/items/"+key, `{"value":`+value+`}`)
			if r.status != 201 && r.status != 200 {
				t.Fatalf("PUT %s on n%d after the leader died: HTTP %d; body: %s", key, n, r.status, r.body)
			}
			s.expected[key] = value
		}
	}
	if nl := s.req("key", "GET", survivors[0], "/cluster/status", "").field("data", "leaderId"); nl == "" || nl == leader {
		t.Fatalf("survivor n%d reports leader %q after the writes", survivors[0], nl)
	}
	for _, n := range survivors {
		s.checkAllOn(n)
	}

	s.step("restarting " + leader)
	script("restart", m[1])

	s.step("every acknowledged key on every node")
	for n := 1; n <= 3; n++ {
		s.checkAllOn(n)
	}

	s.step("cluster status")
	script("status")
}

// deleted marks a key whose delete was acknowledged.
const deleted = "<deleted>"

// smoke is TestClusterScript's state: the cluster and every acknowledged
// key's value in the compact form the store returns (or deleted).
type smoke struct {
	t        *testing.T
	dir, key string
	httpBase int
	client   *http.Client
	expected map[string]string
	started  time.Time
}

type response struct {
	s      *smoke
	what   string
	status int // 0: no HTTP answer
	body   string
}

func (s *smoke) step(what string) {
	if s.started.IsZero() {
		s.started = time.Now()
	}
	s.t.Logf("==> [%.0fs] %s", time.Since(s.started).Seconds(), what)
}

// req sends one request to node n; auth is "key" (the cluster's key), "none"
// or "wrong".
func (s *smoke) req(auth, method string, n int, path, body string) *response {
	s.t.Helper()
	r := &response{s: s, what: fmt.Sprintf("%s %s on n%d", method, path, n)}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.httpBase+n, path), strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch auth {
	case "key":
		req.Header.Set("Authorization", "Bearer "+s.key)
	case "wrong":
		req.Header.Set("Authorization", "Bearer not-the-key")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		r.body = "(no HTTP response: " + err.Error() + ")"
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r.status, r.body = resp.StatusCode, string(b)
	return r
}

// reqRetry repeats req while the answer is a retryable error (no answer, or
// "retryable": true), for at most the 10 s an election may take. Only for
// idempotent requests.
func (s *smoke) reqRetry(auth, method string, n int, path, body string) *response {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tries := 1; ; tries++ {
		r := s.req(auth, method, n, path, body)
		if (r.status != 0 && r.field("error", "retryable") != "true") || time.Now().After(deadline) {
			if tries > 1 {
				s.t.Logf("    (%s answered %d after %d attempts)", r.what, r.status, tries)
			}
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *response) expect(status int, what string) *response {
	r.s.t.Helper()
	if r.status != status {
		r.s.t.Fatalf("%s (%s): HTTP %d, want %d; body: %s", what, r.what, r.status, status, r.body)
	}
	return r
}

// field returns a member of the JSON body as text ("" when absent or null).
func (r *response) field(path ...string) string {
	var v any
	d := json.NewDecoder(strings.NewReader(r.body))
	d.UseNumber()
	if d.Decode(&v) != nil {
		r.s.t.Fatalf("%s: response is not JSON: %s", r.what, r.body)
	}
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// checkKeyOn checks that node n returns key as acknowledged: 404 when
// deleted, else its value both as JSON (key order aside) and byte for byte.
func (s *smoke) checkKeyOn(n int, key string) *response {
	s.t.Helper()
	want := s.expected[key]
	r := s.reqRetry("key", "GET", n, "/kv/items/"+key, "")
	if want == deleted {
		return r.expect(404, "GET of a deleted key")
	}
	r.expect(200, "GET "+key)
	if got := r.field("data", "key"); got != key {
		s.t.Fatalf("%s: .data.key is %q", r.what, got)
	}
	var env struct {
		Data struct {
			Value json.RawMessage `json:"value"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(r.body), &env)
	if !jsonEqual(env.Data.Value, []byte(want)) {
		s.t.Fatalf("%s: value is %s, want %s", r.what, env.Data.Value, want)
	}
	var flat bytes.Buffer
	if json.Compact(&flat, []byte(r.body)) != nil ||
		!strings.Contains(flat.String(), `"value":`+want+`,`) && !strings.Contains(flat.String(), `"value":`+want+`}`) {
		s.t.Fatalf("%s: value not returned byte-exactly; want \"value\":%s in %s", r.what, want, r.body)
	}
	return r
}

func (s *smoke) checkAllOn(n int) {
	s.t.Helper()
	keys := make([]string, 0, len(s.expected))
	for k := range s.expected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.checkKeyOn(n, k)
	}
	s.t.Logf("    ok: n%d returns all %d acknowledged keys", n, len(keys))
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

func (s *smoke) logTails() {
	for n := 1; n <= 3; n++ {
		b, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("n%d", n), "kvnode.log"))
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		s.t.Logf("----- n%d: last 30 lines of its log (%v) -----\n%s", n, err, strings.Join(lines, "\n"))
	}
}

// repoRoot walks up from the working directory (the package directory under
// go test) to the directory that holds go.mod and scripts/cluster.sh.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		_, modErr := os.Stat(filepath.Join(dir, "go.mod"))
		_, scriptErr := os.Stat(filepath.Join(dir, "scripts", "cluster.sh"))
		if modErr == nil && scriptErr == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no directory above the working directory holds go.mod and scripts/cluster.sh")
		}
		dir = parent
	}
}
