//go:build race

package store

// raceDetector is true when tests run with -race: timing measurements are skipped.
const raceDetector = true
