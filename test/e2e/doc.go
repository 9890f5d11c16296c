// Package e2e holds end-to-end tests that run quorumkv as real processes.
//
// They drive the scripts an operator uses, so the scripts and the kvnode binary
// are tested together: TestClusterScript runs scripts/cluster-smoke.sh, which
// builds kvnode, starts a three-node cluster on localhost, exercises the HTTP
// API of every node with curl, kills and restarts the leader, and stops the
// cluster. TestClockOffsetNeverLosesData restarts one node of such a cluster
// with its clock 20 minutes ahead (KV_TEST_CLOCK_OFFSET, the testclock build)
// and checks that it is refused leadership, not ready, and that a TTL key and a
// keyed increment survive, then measures how fast a leader whose clock jumps
// hands leadership over. The tests need bash and curl (scripts/test.sh
// installs curl) and are skipped with -short.
package e2e
