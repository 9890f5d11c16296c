package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

var errOverloaded = apiError{
	status: http.StatusServiceUnavailable, code: "overloaded", retryable: true, retryAfter: true,
	message: "This node is serving its maximum number of concurrent requests; retry after a short delay, or use another node.",
}

var errOverloadedMinIndex = apiError{
	status: http.StatusServiceUnavailable, code: "overloaded", retryable: true, retryAfter: true,
	message: "This node already holds its maximum number of reads waiting for a minIndex; retry after a short delay, read without minIndex, or use another node.",
}

// LimitConcurrency wraps h so that at most max requests are served at once;
// a request beyond that is answered at once with 503 overloaded and
// Retry-After instead of queueing until the node falls over. /healthz is
// exempt, so a busy node is not mistaken for a dead one. max <= 0 disables
// the limit.
//
// A read with ?minIndex= may wait, up to its request deadline, for this node
// to apply that index; a client that sends indexes from the future (or from
// another cluster) would hold its slot for the whole deadline. Such requests
// count against max like any other and, in addition, may hold at most half
// of the slots (at least one): beyond that they are answered 503 overloaded
// at once, so waiting reads can never take the slots that writes, plain
// reads and probes need.
func LimitConcurrency(h http.Handler, max int) http.Handler {
	if max <= 0 {
		return h
	}
	slots := make(chan struct{}, max)
	waits := make(chan struct{}, minIndexSlots(max))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			writeError(w, &errOverloaded)
			return
		}
		if hasMinIndex(r.URL.RawQuery) {
			select {
			case waits <- struct{}{}:
				defer func() { <-waits }()
			default:
				writeError(w, &errOverloadedMinIndex)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// minIndexSlots is how many of max slots requests with minIndex may hold.
func minIndexSlots(max int) int {
	return (max + 1) / 2
}

// hasMinIndex reports whether a raw query carries a minIndex parameter, as
// url.ParseQuery (which readOptions uses) would decode it. Queries that cannot
// name it (no "inIndex" and no escape) are not parsed, so the common request
// pays a substring search at most.
func hasMinIndex(rawQuery string) bool {
	if rawQuery == "" || (!strings.Contains(rawQuery, "inIndex") && !strings.Contains(rawQuery, "%")) {
		return false
	}
	q, _ := url.ParseQuery(rawQuery) // readOptions reports a malformed query
	_, ok := q["minIndex"]
	return ok
}
