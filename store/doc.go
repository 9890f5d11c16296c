// Package store owns the replicated key-value store of one node: the hashicorp/raft
// instance with its raft-boltdb log and stable store and file snapshots, the write path
// (the leader stamps absolute expiry times and proposes commands; followers forward
// writes to the leader over the peer port), linearizable reads (a batched ReadIndex
// served by the leader, followers waiting for their own state machine to catch up),
// the leader's expiry loop, the measured clock offset to every peer (a node whose
// clock is outside the bound of a majority stamps no time and does not stay
// leader), and this node's status. It also guards the node's disk: a CRC-32C on every
// raft log entry and stable value, checks of the data dir before raft starts (a damaged
// file is refused, ErrCorrupt), and a fail-stop on the first storage error (ErrDiskFailed:
// raft is shut down and every request answers that error).
//
// Every method is safe for concurrent use. Errors wrap the sentinels in errors.go;
// the HTTP layer maps them to status codes. The peer RPC methods are numbered and
// bound to their handlers in methods.go, and errors cross the wire through
// wireerror.go. Every goroutine the store starts ends by the time Close returns
// (tasks.go). See DESIGN.md in this directory for the reasoning behind the read
// path, the barrier command, the peer protocol and error meanings.
package store
