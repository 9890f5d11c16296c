// Package fsm is quorumkv's replicated state machine.
//
// It owns the replicated state — entries {value, revision, expiresAt} keyed by
// string, an ordered index by key bytes and an expiry index by (expiresAt, key) —
// together with the versioned binary command codec, Apply/ApplyBatch, and the
// snapshot format written by Snapshot/Persist and read by Restore.
//
// The package is pure. It reads no clock, opens no sockets and does no I/O except
// through the snapshot sink and reader handed to it by raft. Every decision that
// depends on time is made by the proposer and carried in the command (Command.Now,
// Command.ExpiresAt), so every replica that applies the same log reaches the same
// state, byte for byte (see FSM.Hash). Command time never runs backwards: a
// command stamped before the last applied one is applied at that time
// (FSM.LastNow, replicated state), so a proposer with a slow clock cannot
// resurrect expired keys or shorten the idempotency window.
//
// Goroutines: raft calls Apply, ApplyBatch, Snapshot and Restore from its single
// FSM goroutine; Persist runs on raft's snapshot goroutine concurrently with later
// applies. The read methods (Get, Len, AppliedIndex, WaitApplied, ExpiredItems,
// ExpiredItemsAfter, NextExpiry, Hash) are safe from any goroutine at any time and never observe a
// half-applied batch or a half-restored snapshot.
//
// See DESIGN.md in this directory for the codec and snapshot formats and the
// reasons behind the non-obvious choices.
package fsm
