package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

func TestFlagsFromEnvironmentAndCommandLine(t *testing.T) {
	env := map[string]string{
		"KV_HTTP_ADDR":       "0.0.0.0:7000",
		"KV_PEERS":           "a=h1:1,b=h2:2",
		"KV_REQUEST_TIMEOUT": "3s",
		"KV_ID":              "from-env",
	}
	o, err := parseFlags([]string{"--id", "from-flag"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.id != "from-flag" || o.httpAddr != "0.0.0.0:7000" || o.requestTimeout != 3*time.Second || o.peers != "a=h1:1,b=h2:2" {
		t.Fatalf("parsed %+v", o)
	}
	if _, err := parseFlags(nil, func(k string) string { return map[string]string{"KV_REQUEST_TIMEOUT": "soon"}[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "KV_REQUEST_TIMEOUT") {
		t.Fatalf("bad env value: %v", err)
	}
	peers, err := parsePeers(o.peers)
	if err != nil || len(peers) != 2 || peers[1].ID != "b" || peers[1].Addr != "h2:2" {
		t.Fatalf("peers %+v %v", peers, err)
	}
	for _, bad := range []string{"a", "=h:1", "a=", "a=h:1,,"} {
		if _, err := parsePeers(bad); err == nil {
			t.Errorf("parsePeers(%q) accepted", bad)
		}
	}
}

func TestGeneratedAPIKeyIsKeptPrivately(t *testing.T) {
	dir := t.TempDir()
	key, generated, err := resolveAPIKey(options{dataDir: dir})
	if err != nil || !generated || len(key) != 64 {
		t.Fatalf("first start: %q %v %v", key, generated, err)
	}
	fi, err := os.Stat(filepath.Join(dir, apiKeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	again, generated, err := resolveAPIKey(options{dataDir: dir})
	if err != nil || generated || again != key {
		t.Fatalf("second start: %q %v %v", again, generated, err)
	}
	if _, _, err := resolveAPIKey(options{apiKey: "a", apiKeyFile: "b"}); err == nil {
		t.Fatal("both --api-key and --api-key-file accepted")
	}
}

// TestNodeServesAndRestartsFromDisk wires a single node exactly as main does.
func TestNodeServesAndRestartsFromDisk(t *testing.T) {
	args := []string{"--data-dir", t.TempDir(), "--api-key", "secret"}
	n, stop := startTestNode(t, nil, args...)

	base := "http://" + n.httpAddr
	code, body := do(t, "PUT", base+"/kv/items/session-1", `{"value":{"n":18446744073709551617},"ttlSeconds":86400}`)
	if code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, body = do(t, "GET", base+"/kv/items/session-1", "")
	if code != 200 || !bytes.Contains(body, []byte(`"value":{"n":18446744073709551617}`)) {
		t.Fatalf("GET: %d %s", code, body)
	}
	stop()

	n, _ = startTestNode(t, nil, args...)
	base = "http://" + n.httpAddr
	code, body = do(t, "GET", base+"/kv/items/session-1", "")
	if code != 200 || !bytes.Contains(body, []byte(`18446744073709551617`)) {
		t.Fatalf("GET after restart: %d %s", code, body)
	}
	var status struct {
		Data struct {
			State string `json:"state"`
			Keys  int    `json:"keys"`
		} `json:"data"`
	}
	code, body = do(t, "GET", base+"/cluster/status", "")
	if err := json.Unmarshal(body, &status); err != nil || code != 200 || status.Data.State != "Leader" || status.Data.Keys != 1 {
		t.Fatalf("status: %d %s", code, body)
	}
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	return doAs(t, "secret", method, url, body)
}

// doAs is do with the API key secret.
func doAs(t *testing.T, secret, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestIdempotencyMaxBytesFlag(t *testing.T) {
	none := func(string) string { return "" }
	o, err := parseFlags(nil, none, io.Discard)
	if err != nil || o.idemMaxBytes != store.DefaultIdempotencyMaxBytes {
		t.Fatalf("default = %d, %v; want %d", o.idemMaxBytes, err, store.DefaultIdempotencyMaxBytes)
	}
	o, err = parseFlags(nil, func(k string) string { return map[string]string{"KV_IDEMPOTENCY_MAX_BYTES": "1048576"}[k] }, io.Discard)
	if err != nil || o.idemMaxBytes != 1<<20 {
		t.Fatalf("from the environment = %d, %v", o.idemMaxBytes, err)
	}
	for _, bad := range []string{"0", "-5"} {
		if _, err := parseFlags([]string{"--idempotency-max-bytes", bad}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "idempotency-max-bytes") {
			t.Errorf("--idempotency-max-bytes %s: %v, want an error naming the flag", bad, err)
		}
	}
}
