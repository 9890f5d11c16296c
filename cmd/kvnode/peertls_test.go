package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

// TestPeerPortNeedsTLSOrInsecurePeer: kvnode will not run a plaintext peer
// port unless told to, refuses a certificate that is not this node's, and
// says loudly when it runs without peer authentication.
func TestPeerPortNeedsTLSOrInsecurePeer(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := pki.WriteDevSet(certs, pki.DefaultClusterName, []string{"n1", "n2"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-dir", filepath.Join(dir, "data"), "--api-key", "secret", "--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"}
	peer := func(node string) []string {
		return []string{"--peer-ca", filepath.Join(certs, "ca.pem"), "--peer-cert", filepath.Join(certs, node+".pem"), "--peer-key", filepath.Join(certs, node+"-key.pem")}
	}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no peer TLS":                 {nil, nil, "the peer port needs mutual TLS: set --peer-ca, --peer-cert and --peer-key"},
		"half the peer TLS flags":     {peer("n1")[:2], nil, "needs all of --peer-ca, --peer-cert and --peer-key"},
		"--insecure-peer with certs":  {append([]string{"--insecure-peer"}, peer("n1")...), nil, "--insecure-peer cannot be combined"},
		"KV_INSECURE_PEER with certs": {peer("n1"), map[string]string{"KV_INSECURE_PEER": "true"}, "--insecure-peer cannot be combined"},
		"another node's certificate":  {peer("n2"), nil, "is for quorumkv://quorumkv/node/n2, but this node is quorumkv://quorumkv/node/n1"},
		"another cluster":             {append([]string{"--cluster-name", "prod"}, peer("n1")...), nil, "but this node is quorumkv://prod/node/n1"},
		"malformed cluster name":      {append([]string{"--cluster-name", "Prod"}, peer("n1")...), nil, `cluster name "Prod"`},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr lockedBuffer
			code := run(append(append([]string{}, base...), tc.args...), func(k string) string { return tc.env[k] }, &stderr)
			if code != 1 || stderr.count(tc.want) == 0 {
				t.Fatalf("exit %d, want 1 with %q; stderr:\n%s", code, tc.want, stderr.b.String())
			}
		})
	}

	// With --insecure-peer (startTestNode adds it) the node runs, warns at
	// start and says so in /cluster/status.
	logs := &lockedBuffer{}
	n, _ := startTestNode(t, logs, "--data-dir", filepath.Join(dir, "insecure"), "--api-key", "secret")
	if logs.count("the peer port runs WITHOUT mutual TLS (--insecure-peer)") != 1 || logs.count(`"insecure_peer":true`) != 1 {
		t.Fatalf("no start warning about the insecure peer port:\n%s", logs.b.String())
	}
	code, body := do(t, "GET", "http://"+n.httpAddr+"/cluster/status", "")
	if code != 200 || !strings.Contains(string(body), `"insecurePeer":true,"peerWarning":"the peer port runs WITHOUT authentication`) {
		t.Fatalf("status: %d %s", code, body)
	}

	// With peer TLS: nothing insecure to report.
	n2, _ := startTestNode(t, nil, append([]string{"--id", "n2", "--data-dir", filepath.Join(dir, "secure"), "--api-key", "secret"}, peer("n2")...)...)
	code, body = do(t, "GET", "http://"+n2.httpAddr+"/cluster/status", "")
	if code != 200 || !strings.Contains(string(body), `"insecurePeer":false`) || strings.Contains(string(body), "peerWarning") {
		t.Fatalf("status with peer TLS: %d %s", code, body)
	}
}
