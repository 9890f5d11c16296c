// Package e2e holds end-to-end tests that run quorumkv as real processes.
//
// They drive the scripts an operator uses, so the scripts and the kvnode binary
// are tested together: TestClusterScript runs scripts/cluster-smoke.sh, which
// builds kvnode, starts a three-node cluster on localhost, exercises the HTTP
// API of every node with curl, kills and restarts the leader, and stops the
// cluster. The tests need bash and curl (scripts/test.sh installs curl) and are
// skipped with -short.
package e2e
