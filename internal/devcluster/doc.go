// Package devcluster launches and supervises kvnode processes on one machine:
// the local development cluster behind scripts/cluster.sh and cmd/kvdev, and
// the process slots the chaos and end-to-end tests run their nodes in.
//
// It owns two things:
//
//   - Cluster: a cluster kept in a state directory (binary, API key, peer
//     certificates, per-node data, logs and pid files) whose nodes outlive the
//     command that started them. Every command takes the directory's lock, so
//     two invocations never start a node twice, and trusts a pid file only
//     while /proc shows that pid running this directory's kvnode for that
//     node. It builds kvnode, generates the development CA and node
//     certificates (peer mutual TLS by default), waits until the nodes agree
//     on one leader, and joins and removes nodes through the admin HTTP API.
//
//   - Proc: one supervised child process of the calling Go program (start,
//     signal, pause, stop with a deadline, exit history), optionally run
//     through a command wrapper such as `ip netns exec NS`.
//
// What a node is asked to do (its flags) stays with the caller, apart from
// the shared spelling of the peer TLS flags (PeerTLSArgs).
package devcluster
