//go:build !nosync

package store

// noSync is false: every raft log commit is fsynced before raft counts it
// (sync_broken.go has the deliberately broken build).
const noSync = false
