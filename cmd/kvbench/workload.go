package main

import "math/rand/v2"

// workload decides what each iteration sends. An iteration is one request,
// or for cache-aside a GET and, on a miss, the PUT that fills the cache.
// Methods are pure functions of their arguments, so they are safe on every
// worker's goroutine.
type workload struct {
	name         string
	readFraction float64
}

// first returns the first request of an iteration.
func (w workload) first(r *rand.Rand) op {
	switch w.name {
	case "session":
		if r.Float64() < w.readFraction {
			return opGet
		}
		return opPut
	case "write":
		return opPut
	case "counter":
		return opIncr
	case "txn":
		return opTxn
	default: // read, cache-aside
		return opGet
	}
}

// then returns the request that follows prev in the same iteration, on the
// same key, if any.
func (w workload) then(prev op, o outcome) (op, bool) {
	if w.name == "cache-aside" && prev == opGet && o.miss {
		return opPut, true
	}
	return 0, false
}

// missIsError reports whether a miss on op counts as an error: only for the
// read workload, whose keys are all expected to exist.
func (w workload) missIsError(o op) bool {
	return w.name == "read" && o == opGet
}
