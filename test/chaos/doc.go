// Package chaos is quorumkv's Jepsen-style fault-injection suite.
//
// Every scenario runs real kvnode processes, each in its own network namespace
// (veth pairs into a bridge in the root namespace), drives them with 8
// concurrent HTTP clients from the test process, injects faults with a nemesis
// (SIGKILL, SIGSTOP, iptables partitions, rolling restarts, membership
// changes, clocks jumping 20 minutes; and, with every node's data dir on a
// test/faultfs mount, power loss that drops every un-synced write, stalled
// fsyncs and EIO),
// heals, and then checks the recorded history:
//
//   - linearizability of every GET/PUT/DELETE on the register keys, with
//     porcupine (model partitioned by key; unknown outcomes return at infinity),
//     in a memory-limited subprocess with a time limit;
//   - no acknowledged ack/ write lost and none invented, on every node;
//   - convergence: identical state hashes on all nodes within 10 s of healing;
//   - TTL windows: no read of a value after its expiry (resurrection), no miss
//     before it (early expiry), also across leader changes and clock jumps,
//     with the nodes' --max-clock-offset as the only tolerance;
//   - across clock faults, a 600 s TTL key stays readable on every node and a
//     keyed increment retried through every node returns its first result;
//   - watchers (one per node, failing over) deliver every change in log
//     order, without gap, duplicate or uncommitted write, and agree;
//   - near caches (client.NewCache, one per node) reading the register keys
//     answer within their staleness bound: only values written by a write
//     that can have taken effect, none older than every write acknowledged
//     MaxStaleness before the read, never going back per key;
//   - no panic, data race or fatal line in any node log;
//   - a guard: every fault took effect and the cluster did real work before the
//     first fault.
//
// TestChaos runs the CI profile of every scenario; TestSelfTest builds
// deliberately broken kvnodes (-tags brokenreads; -tags nosync, run under
// power loss) and requires the checkers to reject them. Both need root (namespaces, iptables) and are skipped with -short.
// scripts/chaos.sh runs the long profile with several seeds. Reports (text and
// JSON) and, on failure, porcupine's visualisation and node logs go to
// artifacts/chaos/<run>/.
package chaos
