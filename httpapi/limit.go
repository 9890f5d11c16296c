package httpapi

import (
	"net/http"
)

var errOverloaded = apiError{
	status: http.StatusServiceUnavailable, code: "overloaded", retryable: true, retryAfter: true,
	message: "This node is serving its maximum number of concurrent requests; retry after a short delay, or use another node.",
}

// LimitConcurrency wraps h so that at most max requests are served at once;
// a request beyond that is answered at once with 503 overloaded and
// Retry-After instead of queueing until the node falls over. /healthz is
// exempt, so a busy node is not mistaken for a dead one. max <= 0 disables
// the limit.
func LimitConcurrency(h http.Handler, max int) http.Handler {
	if max <= 0 {
		return h
	}
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			h.ServeHTTP(w, r)
		default:
			writeError(w, &errOverloaded)
		}
	})
}
