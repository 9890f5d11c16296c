package httpapi

import (
	"net/http"
)

// stateDigester is implemented by stores that can summarise their applied
// state (*store.Store does). It is optional: a Store without it answers 404 on
// GET /debug/state.
type stateDigester interface {
	// StateHash is a digest of the applied state, equal on converged replicas.
	StateHash() string
	// AppliedIndex is the last log index the state machine applied.
	AppliedIndex() uint64
}

type debugStateData struct {
	AppliedIndex uint64 `json:"appliedIndex"`
	StateHash    string `json:"stateHash"`
}

// debugState serves GET /debug/state (authenticated): this node's applied
// index and state hash, read locally. Fault-injection tests (test/chaos) use
// it to check that replicas converge after faults heal.
func (a *api) debugState(*http.Request) (reply, error) {
	d, ok := a.st.(stateDigester)
	if !ok {
		return reply{}, errRouteNotFound
	}
	// Read the index first: the hash then covers at least that much state.
	idx := d.AppliedIndex()
	return dataReply(http.StatusOK, debugStateData{AppliedIndex: idx, StateHash: d.StateHash()})
}
