// Package watch owns a node's change history and its watchers: a bounded
// ring of the changes the local FSM applied (fed by fsm.ChangeObserver, in
// log order), and subscriptions that read it by log index.
//
// The apply path only appends to the ring and wakes waiting watchers; it never
// waits for one. Each watcher keeps its own cursor into the shared ring and
// may fall at most Config.WatcherBuffer changes behind the newest: that window
// is its buffer, held once for all watchers instead of copied into a queue per
// watcher. A watcher that is further behind and not catching up, or whose
// next change was evicted from the ring, is closed with ErrLagged and the last index it
// completed, from which it can resume (here or on another node). A
// subscription from an index older than the ring fails with a *CompactedError
// naming the oldest index still served.
//
// Resume is "every change with index > N": all changes of one log entry share
// its index, so a watcher is always handed an entry's changes together, and
// the index it has completed is never in the middle of an entry.
//
// The package reads no clock: heartbeats and stream deadlines are the HTTP
// layer's. See DESIGN.md.
package watch
