package httpapi

import (
	"net/http"
)

// Whether a 503 outcome_unknown is retryable depends on the request, not only
// on the error: the write may have been applied, so repeating it is safe only
// when a second application cannot change the answer or the state beyond
// what one application would. resolveError gives the table's entry;
// outcomeUnknownFor refines it for the request that failed.

var (
	outcomeUnknownSafe = apiError{
		status: http.StatusServiceUnavailable, code: "outcome_unknown", retryable: true, retryAfter: true,
		message: "The write may or may not have been applied. Repeating this exact request is safe: it carries an Idempotency-Key, or it is a plain PUT, PATCH or DELETE without a condition.",
	}
	outcomeUnknownUnsafe = apiError{
		status: http.StatusServiceUnavailable, code: "outcome_unknown", retryable: false,
		message: "The write may or may not have been applied, and repeating it blindly is not safe (a conditional write, incr, restore or membership change without an Idempotency-Key could apply twice or fail after succeeding). Read the state to find out, then decide; send an Idempotency-Key with writes to make them safe to repeat.",
	}
)

// outcomeUnknownFor returns the outcome_unknown response for a request to
// the route template.
func outcomeUnknownFor(template string, r *http.Request) *apiError {
	if safeToRepeat(template, r) {
		return &outcomeUnknownSafe
	}
	return &outcomeUnknownUnsafe
}

// safeToRepeat reports whether r may be sent again after an attempt whose
// outcome is unknown:
//   - any item write with an Idempotency-Key: the state machine answers a
//     repeat with the first result (within the idempotency window);
//   - PUT, PATCH and DELETE of one key without If-Match or If-None-Match, and
//     a prefix delete: applying them twice leaves what applying them once,
//     a moment later, would have left;
//   - a join (POST /cluster/nodes): joining again with the same id and
//     addresses changes nothing.
//
// Not safe: a conditional write (the first application changes the version,
// so the repeat fails with 412 after the write succeeded), incr (it would
// add twice), restore (it would replace writes made after the first one
// committed), node removal and leadership transfer.
func safeToRepeat(template string, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true // a read changes nothing
	}
	switch template {
	case itemTemplate, "/kv/items/{key}/incr", "/kv/items", txnTemplate:
		if r.Header.Get(headerIdemKey) != "" {
			return true
		}
	}
	switch template {
	case itemTemplate:
		switch r.Method {
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			return len(r.Header.Values("If-Match")) == 0 && len(r.Header.Values("If-None-Match")) == 0
		}
	case "/kv/items":
		return r.Method == http.MethodDelete
	case "/cluster/nodes":
		return r.Method == http.MethodPost
	}
	return false
}
