package e2e

import (
	"crypto/tls"
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
// plain-TCP raft connection.
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
}
