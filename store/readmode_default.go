//go:build !brokenreads

package store

// brokenReads is true only in the deliberately broken build (tag brokenreads)
// that test/chaos uses to prove its checker can fail.
const brokenReads = false
