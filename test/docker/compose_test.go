package docker

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writePatience is how long a write may keep failing with a retryable answer
// after the leader's container is killed: an election takes one to two
// seconds with the default timeouts, the rest is margin for a slow machine.
const writePatience = 15 * time.Second

// TestComposeCluster is the Docker scenario of the deploy issue: image, compose
// cluster, the API on every node, the leader killed and restarted, no
// acknowledged write lost.
func TestComposeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Docker image and runs a three-container cluster; skipped with -short")
	}
	requireDocker(t)
	root := repoRoot(t)
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("[%5.1fs] %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	removeStale(t, root)

	p := newProject(t, root)
	t.Cleanup(func() {
		step("tearing down project %s", p.name)
		p.down()
	})

	// The file is in Compose Specification form: no top-level version key
	// (docker compose v2 warns that it is obsolete).
	if raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml")); err != nil {
		t.Fatal(err)
	} else if regexp.MustCompile(`(?m)^version:`).Match(raw) {
		t.Error("docker-compose.yml has a top-level version: key; the Compose Specification dropped it")
	}

	// The compose file refuses to start a cluster without an API key.
	if out, err := runIn(root, p.envWithout("KV_API_KEY"), 30*time.Second, "docker-compose", "-p", p.name, "config", "-q"); err == nil || !strings.Contains(out, "KV_API_KEY") {
		t.Fatalf("docker-compose without KV_API_KEY: err=%v, output %q; want a failure naming KV_API_KEY", err, out)
	}

	step("building %s with scripts/docker-build.sh", p.image)
	out, err := runIn(root, p.env(), 5*time.Minute, filepath.Join(root, "scripts", "docker-build.sh"), p.image)
	if err != nil {
		t.Fatalf("scripts/docker-build.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	if len(fields) != 3 || fields[0] != p.image {
		t.Fatalf("scripts/docker-build.sh: last line %q, want \"IMAGE ID SIZE\"", lines[len(lines)-1])
	}
	size, _ := strconv.ParseInt(fields[2], 10, 64)
	step("built %s: %s, %.1f MB", p.image, fields[1][:min(len(fields[1]), 19)], float64(size)/1e6)
	inspect, err := runIn(root, nil, 30*time.Second, "docker", "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{json .Config.Volumes}}", p.image)
	if err != nil || strings.TrimSpace(inspect) != `65532:65532 ["CMD","/kvnode","health"] {"/data":{}}` {
		t.Fatalf("image config: %q (%v); want the non-root user, the health check and the /data volume", inspect, err)
	}
	labels, err := runIn(root, nil, 30*time.Second, "docker", "image", "inspect", "--format", "{{json .Config.Labels}}", p.image)
	if err != nil {
		t.Fatalf("image labels: %v", err)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision", "org.opencontainers.image.created"} {
		if !strings.Contains(labels, `"`+l+`":"`) || strings.Contains(labels, `"`+l+`":""`) {
			t.Errorf("image label %s missing or empty: %s", l, labels)
		}
	}
	if rev, _ := runIn(root, nil, 10*time.Second, "git", "rev-parse", "HEAD"); rev != "" && !strings.Contains(labels, strings.TrimSpace(rev)) {
		t.Errorf("image labels %s do not name the commit %s", labels, rev)
	}

	step("docker-compose up on 127.0.0.1 ports %v", p.ports)
	p.mustCompose(2*time.Minute, "up", "-d")

	c := &apiClient{key: p.key, http: &http.Client{Timeout: 15 * time.Second}}
	leader := p.waitForLeader(t, c, 45*time.Second)
	step("every node agrees on leader %s", leader)

	// The peer ports run mutual TLS with the certificates of the one-shot
	// certs service, each node proving its own identity; none is insecure.
	for _, svc := range services {
		logs := p.mustCompose(time.Minute, "logs", "--no-color", svc)
		if !strings.Contains(logs, `"mtls":true`) || !strings.Contains(logs, `"identity":"quorumkv://quorumkv/node/`+svc+`"`) {
			t.Fatalf("%s does not run peer mutual TLS as itself; its log:\n%s", svc, logs)
		}
		var st struct {
			Data struct {
				InsecurePeer bool `json:"insecurePeer"`
			} `json:"data"`
		}
		wantJSON(t, "status of "+svc, c.doRetry(t, writePatience, http.MethodGet, p.url(svc, "/cluster/status"), ""), http.StatusOK, &st)
		if st.Data.InsecurePeer {
			t.Fatalf("%s reports an insecure peer port", svc)
		}
	}
	if ps := p.mustCompose(time.Minute, "ps", "-a", "certs"); !strings.Contains(ps, "Exit 0") {
		t.Fatalf("the certs service did not finish cleanly:\n%s", ps)
	}

	// acked holds every acknowledged write: key → value as stored (compact
	// JSON), "" for a deleted key.
	acked := map[string]string{}
	for i, svc := range services {
		other := services[(i+1)%len(services)]
		session := "session-usr_" + svc
		value := `{"userId":"usr_` + svc + `","cart":[{"sku":"item_1","qty":2}],"lastActive":1764000000000,"big":18446744073709551617}`
		put := `{"value":` + value + `,"ttlSeconds":86400}`

		wantJSON(t, "create "+session+" on "+svc, c.doRetry(t, writePatience, http.MethodPut, p.url(svc, "/kv/items/"+session), put), http.StatusCreated, nil)
		p.wantValue(t, c, other, session, value)
		wantJSON(t, "replace "+session+" on "+other, c.doRetry(t, writePatience, http.MethodPut, p.url(other, "/kv/items/"+session), put), http.StatusOK, nil)
		var del struct {
			Deleted bool `json:"deleted"`
		}
		wantJSON(t, "delete "+session+" on "+other, c.doRetry(t, writePatience, http.MethodDelete, p.url(other, "/kv/items/"+session), ""), http.StatusOK, &del)
		if !del.Deleted {
			t.Fatalf("delete %s on %s: deleted=false", session, other)
		}
		acked[session] = ""
		p.wantValue(t, c, svc, session, "")

		// cache-aside: a miss, then compute and store for an hour.
		cache := "cache-report-" + svc
		p.wantValue(t, c, svc, cache, "")
		wantJSON(t, "cache "+cache+" on "+svc, c.doRetry(t, writePatience, http.MethodPut, p.url(svc, "/kv/items/"+cache), `{"value":[1,2,3],"ttlSeconds":3600}`), http.StatusCreated, nil)
		acked[cache] = "[1,2,3]"
		p.wantValue(t, c, other, cache, "[1,2,3]")

		kept := "kept-" + svc
		wantJSON(t, "create "+kept, c.doRetry(t, writePatience, http.MethodPut, p.url(svc, "/kv/items/"+kept), `{"value":"from `+svc+`"}`), http.StatusCreated, nil)
		acked[kept] = `"from ` + svc + `"`
	}
	step("PUT/GET/DELETE and cache-aside done on every node (%d keys acknowledged)", len(acked))

	killed := p.container(leader)
	if out, err := runIn(root, nil, 30*time.Second, "docker", "kill", killed); err != nil {
		t.Fatalf("docker kill %s (%s): %v\n%s", leader, killed, err, out)
	}
	killedAt := time.Now()
	step("killed the leader %s (container %.12s)", leader, killed)

	survivors := slices.DeleteFunc(slices.Clone(services), func(s string) bool { return s == leader })
	for i, svc := range survivors {
		for j := range 3 {
			key := fmt.Sprintf("after-kill-%s-%d", svc, j)
			value := fmt.Sprintf(`{"writer":"%s","n":%d}`, svc, j)
			wantJSON(t, "write "+key+" on "+svc, c.doRetry(t, writePatience, http.MethodPut, p.url(svc, "/kv/items/"+key), `{"value":`+value+`}`), http.StatusCreated, nil)
			acked[key] = value
			if i == 0 && j == 0 {
				step("first write after the kill acknowledged by %s after %.2fs", svc, time.Since(killedAt).Seconds())
			}
		}
	}
	newLeader := p.waitForLeaderAmong(t, c, survivors, 15*time.Second)
	step("writes continue on %v; new leader %s", survivors, newLeader)

	if out, err := runIn(root, nil, time.Minute, "docker", "start", killed); err != nil {
		t.Fatalf("docker start %s: %v\n%s", killed, err, out)
	}
	step("restarted %s", leader)

	for _, svc := range services {
		for key, value := range acked {
			p.wantValue(t, c, svc, key, value)
		}
	}
	step("all %d acknowledged keys read back from every node, %s included", len(acked), leader)
}

// wantValue reads key on svc (retrying while the node cannot answer yet) and
// fails unless the stored value is exactly value, or the key is missing when
// value is "".
func (p *project) wantValue(t *testing.T, c *apiClient, svc, key, value string) {
	t.Helper()
	resp := c.doRetry(t, 30*time.Second, http.MethodGet, p.url(svc, "/kv/items/"+key), "")
	if value == "" {
		if resp.status != http.StatusNotFound {
			t.Fatalf("GET %s on %s: %d %s, want 404", key, svc, resp.status, resp.body)
		}
		return
	}
	var it item
	wantJSON(t, "GET "+key+" on "+svc, resp, http.StatusOK, &it)
	if string(it.Value) != value {
		t.Fatalf("GET %s on %s: value %s, want %s", key, svc, it.Value, value)
	}
}

// waitForLeader waits until every node answers /cluster/status naming the
// same leader, and returns it.
func (p *project) waitForLeader(t *testing.T, c *apiClient, patience time.Duration) string {
	t.Helper()
	return p.waitForLeaderAmong(t, c, services, patience)
}

// waitForLeaderAmong waits until every node in nodes names the same leader,
// itself one of nodes.
func (p *project) waitForLeaderAmong(t *testing.T, c *apiClient, nodes []string, patience time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(patience)
	var last string
	for {
		leaders := map[string]bool{}
		for _, svc := range nodes {
			st, err := c.status(p.url(svc, "/cluster/status"))
			if err != nil {
				last = fmt.Sprintf("%s: %v", svc, err)
				leaders[""] = true
				continue
			}
			leaders[st.LeaderID] = true
		}
		if len(leaders) == 1 {
			for l := range leaders {
				if slices.Contains(nodes, l) {
					return l
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %v did not agree on a leader among them within %s (leaders seen %v; last error %s)", nodes, patience, leaders, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// envWithout is the project's environment minus one variable.
func (p *project) envWithout(name string) []string {
	return slices.DeleteFunc(p.env(), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}
