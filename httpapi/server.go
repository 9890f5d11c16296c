package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/quorumkv/quorumkv/store"
)

// Store is what the HTTP API needs from the replicated store. *store.Store
// implements it; tests use a fake.
//
// Methods are called on the request's goroutine with a context carrying the
// request deadline (Config.RequestTimeout) and must return when it is done.
// Every error must wrap one of the store sentinel errors or be a context
// error: those map to documented responses, and anything else is reported to
// the client as 500 internal and logged.
type Store interface {
	// Get returns the live item at key, or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, key string, level store.ReadLevel) (store.Item, error)

	// Set stores value, which is valid compact JSON, at key. ttl is 0 for no
	// expiry, otherwise a whole number of milliseconds between 1 ms and 10 years.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) (store.SetResult, error)

	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) (store.DeleteResult, error)

	// Status describes this node and the cluster as this node sees it.
	Status(ctx context.Context) (store.Status, error)
}

// endpoint computes the complete response to one request, or an error that
// resolveError maps to one. It never touches the ResponseWriter.
type endpoint func(r *http.Request) (reply, error)

// route is one path template and the endpoints for its methods.
type route struct {
	template string
	public   bool // served without authentication
	methods  []routeMethod
}

type routeMethod struct {
	method string
	handle endpoint
}

type api struct {
	cfg       Config
	st        Store
	log       *slog.Logger
	keyDigest [sha256.Size]byte
}

// New returns the HTTP handler for the API, serving st. It validates cfg and
// fills its defaults. The handler is safe for concurrent use and holds no
// goroutines of its own.
func New(cfg Config, st Store) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("httpapi: Store is nil")
	}
	cfg = cfg.withDefaults()
	a := &api{cfg: cfg, st: st, log: cfg.Logger, keyDigest: sha256.Sum256([]byte(cfg.APIKey))}

	routes := []route{
		{template: "/healthz", public: true, methods: []routeMethod{
			{http.MethodGet, a.healthz},
		}},
		{template: "/cluster/status", methods: []routeMethod{
			{http.MethodGet, a.clusterStatus},
		}},
		{template: "/debug/state", methods: []routeMethod{
			{http.MethodGet, a.debugState},
		}},
		{template: "/kv/items/", methods: []routeMethod{
			{http.MethodGet, a.emptyKey},
			{http.MethodPut, a.emptyKey},
			{http.MethodDelete, a.emptyKey},
		}},
		{template: "/kv/items/{key}", methods: []routeMethod{
			{http.MethodGet, a.getItem},
			{http.MethodPut, a.putItem},
			{http.MethodDelete, a.deleteItem},
		}},
	}

	// UseEncodedPath: match on the escaped path so %2F stays inside {key}.
	// SkipClean: never answer with a redirect (a 301 turns a PUT into a GET in
	// many clients); a path that does not match is a 404.
	r := mux.NewRouter().UseEncodedPath().SkipClean(true)
	for _, rt := range routes {
		r.Handle(rt.template, a.serve(rt))
	}
	r.NotFoundHandler = a.serve(route{template: "", public: true})
	return r, nil
}

// maxBodyBytes bounds every request body while it is read.
func (a *api) maxBodyBytes() int64 { return a.cfg.MaxValueBytes + envelopeAllowance }

// serve adapts one route to http.Handler: authentication (before any body is
// read), method dispatch, the request deadline, writing the single response,
// and the request log. A route with no methods answers 404 (the unmatched route).
func (a *api) serve(rt route) http.Handler {
	allow := make([]string, len(rt.methods))
	for i, m := range rt.methods {
		allow[i] = m.method
	}
	allowHeader := strings.Join(allow, ", ")
	logRoute := rt.template
	if logRoute == "" {
		logRoute = "unmatched"
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := 0
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic serving request", "method", r.Method, "path", r.URL.EscapedPath(),
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if status == 0 {
					status = errInternal.status
					writeError(w, &errInternal)
				}
			}
			a.log.Debug("request", "method", r.Method, "route", logRoute, "status", status,
				"latency", time.Since(start))
		}()

		rep, err := a.dispatch(rt, allowHeader, w, r)
		if err != nil {
			e, internal := resolveError(err)
			if internal {
				a.log.Error("request failed", "method", r.Method, "path", r.URL.EscapedPath(), "err", err)
			}
			status = e.status
			writeError(w, e)
			return
		}
		status = rep.status
		writeReply(w, rep)
	})
}

func (a *api) dispatch(rt route, allow string, w http.ResponseWriter, r *http.Request) (reply, error) {
	if len(rt.methods) == 0 {
		return reply{}, errRouteNotFound
	}
	if !rt.public {
		if err := a.authenticate(r); err != nil {
			return reply{}, err
		}
	}
	var handle endpoint
	for _, m := range rt.methods {
		if m.method == r.Method {
			handle = m.handle
			break
		}
	}
	if handle == nil {
		return reply{}, errMethodNotAllowed(r.Method, allow)
	}
	// Bound the body while it is read: a huge body is cut off, never buffered.
	r.Body = http.MaxBytesReader(w, r.Body, a.maxBodyBytes())
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	return handle(r.WithContext(ctx))
}
