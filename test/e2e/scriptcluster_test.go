package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// clusterScript returns a runner of scripts/cluster.sh for a cluster of its
// own: KV_CLUSTER_DIR dir, HTTP ports httpBase+1..3 and peer ports
// peerBase+1..3, and API key key. Pick bases below the kernel's ephemeral
// range (32768-60999) so an outgoing connection elsewhere cannot be holding
// one of the ports. The runner logs the script's output, fails the test on a
// non-zero exit and returns the output; the cluster is stopped at cleanup.
func clusterScript(t *testing.T, dir string, httpBase, peerBase int, key string) func(args ...string) string {
	t.Helper()
	root := repoRoot(t)
	env := append(os.Environ(), "KV_CLUSTER_DIR="+dir,
		"KV_CLUSTER_HTTP_BASE="+strconv.Itoa(httpBase), "KV_CLUSTER_PEER_BASE="+strconv.Itoa(peerBase), "KV_API_KEY="+key)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "cluster.sh")}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		t.Logf("cluster.sh %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("cluster.sh %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	t.Cleanup(func() { run("stop") })
	return run
}
