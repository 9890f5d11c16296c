package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"os/exec"
	"strconv"

	"github.com/quorumkv/quorumkv/client"

	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterScriptTLS runs `scripts/cluster.sh start --tls` and checks the
// cluster is encrypted end to end: HTTPS with the generated CA works on every
// node and forwards writes, plain HTTP does not, and the peer ports refuse a
// plain-TCP raft connection. The Go client and kvctl then work against it
// with the CA (flags and environment) and refuse it without.
func TestClusterScriptTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	dir := t.TempDir()
	script := clusterScript(t, dir, 22080, 22180, "tls-test-key")
	script("start", "--tls")

	caPEM, err := os.ReadFile(filepath.Join(dir, "certs", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	call := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tls-test-key")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i, port := range []string{"22081", "22082", "22083"} {
		key := "tls-" + port
		if code, body := call("PUT", "https://127.0.0.1:"+port+"/kv/items/"+key, `{"value":{"n":1}}`); code != 201 {
			t.Fatalf("PUT via node %d: %d %s", i+1, code, body)
		}
		next := []string{"22082", "22083", "22081"}[i]
		if code, body := call("GET", "https://127.0.0.1:"+next+"/kv/items/"+key, ""); code != 200 || !strings.Contains(body, `"value":{"n":1}`) {
			t.Fatalf("GET via another node: %d %s", code, body)
		}
	}
	if resp, err := http.Get("http://127.0.0.1:22081/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on an HTTPS node")
		}
	}
	conn, err := net.Dial("tcp", "127.0.0.1:22181")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte{0x01, 0x00, 0x00})
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("peer port kept a plain-TCP raft connection open")
		}
	}

	clientAndKvctlOverTLS(t, dir, []string{"https://127.0.0.1:22081", "https://127.0.0.1:22082", "https://127.0.0.1:22083"}, "tls-test-key")
}

// clientAndKvctlOverTLS drives the HTTPS cluster of dir (cluster.sh's
// certs/ca.pem) with the Go client and a freshly built kvctl.
func clientAndKvctlOverTLS(t *testing.T, dir string, endpoints []string, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := filepath.Join(dir, "certs", "ca.pem")
	env := map[string]string{client.EnvEndpoints: strings.Join(endpoints, ","), client.EnvAPIKey: key, client.EnvCACert: ca}
	cfg, err := client.ConfigFromLookup(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.SpreadReads = true
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 6 {
		w, err := c.Put(ctx, "tls-client-"+strconv.Itoa(i), i)
		if err != nil {
			t.Fatalf("client Put over TLS: %v", err)
		}
		if it, err := c.Get(ctx, "tls-client-"+strconv.Itoa(i), client.Stale(), client.MinIndex(w.Index)); err != nil || string(it.Value) != strconv.Itoa(i) {
			t.Fatalf("client Get over TLS (spread over the nodes): %s %v", it.Value, err)
		}
	}
	noCA, _ := client.New(client.Config{Endpoints: endpoints, APIKey: key})
	start := time.Now()
	if _, err := noCA.Get(ctx, "tls-client-0"); err == nil || errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client without the CA: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a rejected certificate was retried")
	}

	bin := filepath.Join(t.TempDir(), "kvctl")
	goBuild(t, repoRoot(t), bin, "./cmd/kvctl")
	kvctl := func(wantCode int, extraEnv []string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append([]string{"KV_ENDPOINTS=" + strings.Join(endpoints, ","), "KV_API_KEY=" + key}, extraEnv...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("kvctl %q: exit %d, want %d\n%s", args, code, wantCode, out)
		}
		return string(out)
	}
	if out := kvctl(1, nil, "get", "tls-client-1"); !strings.Contains(out, "--cacert") {
		t.Fatalf("kvctl without the CA gives no hint: %s", out)
	}
	if out := kvctl(0, nil, "--cacert", ca, "get", "tls-client-1"); strings.TrimSpace(out) != "1" {
		t.Fatalf("kvctl --cacert get: %q", out)
	}
	withCA := []string{"KV_CACERT=" + ca}
	if out := kvctl(0, withCA, "status"); !strings.Contains(out, "leader") {
		t.Fatalf("kvctl status with KV_CACERT: %s", out)
	}
	kvctl(0, []string{"KV_INSECURE_SKIP_TLS_VERIFY=true"}, "get", "tls-client-2")

	snap := filepath.Join(t.TempDir(), "tls.snap")
	if out := kvctl(0, withCA, "snapshot", "save", snap); !strings.Contains(out, "matches the server's") {
		t.Fatalf("snapshot save did not check the SHA-256: %s", out)
	}
	if out := kvctl(0, nil, "snapshot", "verify", snap); !strings.Contains(out, "valid snapshot") {
		t.Fatalf("snapshot verify: %s", out)
	}
	kvctl(0, withCA, "del", "tls-client-3")
	out := kvctl(0, withCA, "snapshot", "restore", snap)
	if !strings.Contains(out, "restored ") || !strings.Contains(out, "sha256 ") || !strings.Contains(out, "at index ") {
		t.Fatalf("restore printed no summary: %s", out)
	}
	if out := kvctl(0, withCA, "get", "tls-client-3"); strings.TrimSpace(out) != "3" {
		t.Fatalf("after the restore: %q", out)
	}
	b, _ := os.ReadFile(snap)
	b[len(b)/2] ^= 0xff
	os.WriteFile(snap, b, 0o600)
	if out := kvctl(1, nil, "snapshot", "verify", snap); !strings.Contains(out, "not a valid snapshot") {
		t.Fatalf("verify of a corrupted file: %s", out)
	}
}
