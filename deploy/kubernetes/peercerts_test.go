package kubernetes

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/pki"
)

// peerSecret is the Secret peer-certs.sh creates and the pods mount.
const peerSecret = "quorumkv-peer-tls"

// scriptClusterName is the cluster name peer-certs.sh issues certificates
// for by default.
func scriptClusterName(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("peer-certs.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^cluster_name=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("peer-certs.sh sets no default cluster_name")
	}
	return string(m[1])
}

// TestPeerCertsScript runs peer-certs.sh with a stand-in kubectl that records
// its command lines and stdin: the Secret gets ca.pem and each pod's
// certificate and key (never the CA key, never a key on a command line), the
// certificates carry the pods' identities, and a second run with more
// replicas adds a certificate from the same CA without replacing the others.
func TestPeerCertsScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvnode")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kvnode").CombinedOutput(); err != nil {
		t.Fatalf("go build kvnode: %v\n%s", err, out)
	}
	fake := filepath.Join(dir, "fakebin")
	os.MkdirAll(fake, 0o755)
	calls := filepath.Join(dir, "calls")
	script := `#!/bin/sh
printf '%s\n' "$*" >>"` + calls + `"
case "$1" in
apply) cat >>"` + calls + `.stdin" ;;
create) echo "kind: Secret" ;;
esac
`
	if err := os.WriteFile(filepath.Join(fake, "kubectl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pki")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{"peer-certs.sh", "--out", out, "--namespace", "kv"}, args...)...)
		cmd.Env = append(os.Environ(), "KVNODE="+bin, "PATH="+fake+":"+os.Getenv("PATH"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("peer-certs.sh %v: %v\n%s", args, err, b)
		}
	}
	run()
	b, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines) // the two ends of a pipe: either may log first
	stdin, _ := os.ReadFile(calls + ".stdin")
	if len(lines) != 2 || lines[0] != "apply --namespace kv -f -" || !strings.HasPrefix(lines[1], "create secret generic "+peerSecret+" --namespace kv ") ||
		string(stdin) != "kind: Secret\n" {
		t.Fatalf("kubectl calls:\n%s\napply's stdin: %q", b, stdin)
	}
	lines = lines[1:]
	files := regexp.MustCompile(`--from-file=(\S+?)=(\S+)`).FindAllStringSubmatch(lines[0], -1)
	var keys []string
	for _, f := range files {
		keys = append(keys, f[1])
		if strings.Contains(f[2], "ca-key") {
			t.Errorf("the Secret would hold the CA key: %s", f[0])
		}
	}
	slices.Sort(keys)
	want := []string{"ca.pem", "quorumkv-0-key.pem", "quorumkv-0.pem", "quorumkv-1-key.pem", "quorumkv-1.pem", "quorumkv-2-key.pem", "quorumkv-2.pem"}
	if !slices.Equal(keys, want) {
		t.Fatalf("Secret keys %v, want %v", keys, want)
	}
	if strings.Contains(lines[0], "PRIVATE KEY") {
		t.Fatal("key material on kubectl's command line")
	}
	ca0, _ := os.ReadFile(filepath.Join(out, "ca.pem"))

	run("--replicas", "4")
	ca1, _ := os.ReadFile(filepath.Join(out, "ca.pem"))
	if string(ca0) != string(ca1) {
		t.Fatal("a second run replaced the CA")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca1)
	for i, pod := range []string{"quorumkv-0", "quorumkv-1", "quorumkv-2", "quorumkv-3"} {
		raw, err := os.ReadFile(filepath.Join(out, pod+".pem"))
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		blk, _ := pem.Decode(raw)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not chain to the CA: %v", pod, err)
		}
		if id, err := pki.IdentityOf(cert); err != nil || id != (pki.Identity{Cluster: scriptClusterName(t), Node: pod}) {
			t.Errorf("pod %d identity %v %v", i, id, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem: %v %v", fi, err)
	}
}
