//go:build brokenreads

package store

// brokenReads makes linearizable reads skip the read index and return this
// node's local state, as a stale leader or lagging follower would. This build
// is DELIBERATELY BROKEN: test/chaos builds kvnode with -tags brokenreads and
// requires its linearizability checker to reject the histories it produces.
// Never ship it.
const brokenReads = true
