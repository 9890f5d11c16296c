package httpapi

import (
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// RequestLogMode selects which requests are logged at info level. Requests
// not logged at info are logged at debug level.
type RequestLogMode string

const (
	// RequestLogErrors (the default) logs at info the requests an operator
	// must see: answered 5xx, refused 401/403, or slower than SlowRequest.
	// Successes, misses (404) and failed conditions (412) are normal traffic
	// for a cache and session store and go to debug.
	RequestLogErrors RequestLogMode = "errors"
	// RequestLogAll logs every request at info.
	RequestLogAll RequestLogMode = "all"
	// RequestLogOff logs no request at info.
	RequestLogOff RequestLogMode = "off"
)

// SlowRequest is the latency from which RequestLogErrors logs a request
// whatever its status.
const SlowRequest = time.Second

// requestIDHeader carries the request id both ways.
const requestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a client-supplied request id.
const maxRequestIDLen = 128

// requestIDs generates request ids: a random prefix drawn once per handler
// (so ids from different nodes and restarts do not collide) and a counter.
// Cost: one atomic add and one small allocation.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return &requestIDs{prefix: base32.HexEncoding.EncodeToString(b[:])}
}

func (g *requestIDs) next() string {
	var buf [32]byte
	b := append(buf[:0], g.prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, g.n.Add(1), 36)
	return string(b)
}

// validRequestID reports whether a client-supplied id may be used as is: 1 to
// 128 visible ASCII characters, so it cannot break a log line or a header.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestID returns the request's id, the client's X-Request-Id when it is
// sane, else a new one, and sets it on the response.
func (a *api) requestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get(requestIDHeader)
	if !validRequestID(id) {
		id = a.ids.next()
	}
	w.Header()[requestIDHeader] = []string{id}
	return id
}

// finishRequest records an answered request in the metrics and the request
// log. caller is the API key's name ("" before authentication).
func (a *api) finishRequest(rm *routeMetrics, r *http.Request, status int, start time.Time, caller, id string) {
	d := time.Since(start)
	rm.observe(r.Method, status, d)
	a.metrics.observeKey(caller)

	level := slog.LevelDebug
	switch a.cfg.RequestLog {
	case RequestLogAll:
		level = slog.LevelInfo
	case RequestLogErrors:
		if status >= 500 || status == http.StatusUnauthorized || status == http.StatusForbidden || d >= SlowRequest {
			level = slog.LevelInfo
		}
	}
	ctx := r.Context()
	if !a.log.Enabled(ctx, level) {
		return
	}
	a.log.LogAttrs(ctx, level, "request",
		slog.String("method", r.Method),
		slog.String("route", rm.route),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(d.Microseconds())/1000),
		slog.String("key", caller),
		slog.String("request_id", id),
		slog.String("remote", r.RemoteAddr),
	)
}
