// Package e2e holds end-to-end tests that run quorumkv as real processes.
//
// Most drive scripts/cluster.sh, the command an operator uses, so the script,
// the launcher behind it (internal/devcluster) and the kvnode binary are
// tested together: TestClusterScript starts a three-node cluster in a fresh
// directory, exercises the HTTP API of every node, kills and restarts the
// leader and checks every acknowledged write on every node.
// TestClockOffsetNeverLosesData restarts one node of such a cluster with its
// clock 20 minutes ahead (KV_TEST_CLOCK_OFFSET, the testclock build) and checks
// that it is refused leadership, not ready, and that a TTL key and a keyed
// increment survive, then measures how fast a leader whose clock jumps hands
// leadership over. The tests need bash and go and are skipped with -short.
package e2e
