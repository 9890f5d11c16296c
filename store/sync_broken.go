//go:build nosync

package store

// noSync turns off the fsync of every raft log commit (raft-boltdb's
// NoSync): an acknowledged write may then be only in the page cache of the
// majority that acknowledged it. This build is DELIBERATELY BROKEN:
// test/chaos builds kvnode with -tags nosync and requires its power-loss
// scenario to report acknowledged writes lost. The wal log store has no
// such switch and still syncs. Never ship it.
const noSync = true
