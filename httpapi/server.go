package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	apispec "github.com/quorumkv/quorumkv/api"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/watch"
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
	// Read returns the live item at key, or an error wrapping store.ErrNotFound,
	// at the requested read level, and describes the state it was served from.
	Read(ctx context.Context, key string, opts store.ReadOptions) (store.Item, store.ReadInfo, error)

	// List returns one page of live keys in byte order.
	List(ctx context.Context, req store.ListRequest) (store.ListResult, store.ReadInfo, error)

	// Put stores value, which is valid compact JSON, at key. ttl is 0 for no
	// expiry, otherwise a whole number of milliseconds between 1 ms and 10
	// years; keepTTL (with ttl 0) keeps the live key's expiry. Conditions and
	// the idempotency key are in opts.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration, keepTTL bool, opts store.WriteOptions) (store.SetResult, error)

	// DeleteIf removes key; a missing key is not an error unless opts.IfMatch is set.
	DeleteIf(ctx context.Context, key string, opts store.WriteOptions) (store.DeleteResult, error)

	// Touch replaces a live key's expiry (ttl 0: none), or fails with store.ErrNotFound.
	Touch(ctx context.Context, key string, ttl time.Duration, opts store.WriteOptions) (store.SetResult, error)

	// Incr adds by to the integer at key, creating it from 0 with ttl (if > 0).
	Incr(ctx context.Context, key string, by int64, ttl time.Duration, opts store.WriteOptions) (store.IncrResult, error)

	// DeletePrefix deletes every key starting with prefix (non-empty) that was
	// last written before the call, in chunks of bounded size: readers may see
	// a partly deleted prefix while it runs. Deleted counts every live key
	// removed.
	DeletePrefix(ctx context.Context, prefix string, opts store.WriteOptions) (store.DeletePrefixResult, error)

	// Watch subscribes to this node's changes under req.Prefix (package
	// watch); the caller closes the watcher. Errors: a linearizable read's,
	// watch.ErrOverloaded, *watch.CompactedError.
	Watch(ctx context.Context, req store.WatchRequest) (*watch.Watcher, error)
	// Txn applies a transaction's checks and operations at one log index, or
	// nothing (*store.TxnCheckError, *store.TxnOpError); one without writes
	// is a linearizable read.
	Txn(ctx context.Context, req store.TxnRequest, opts store.WriteOptions) (store.TxnResult, error)

	// Status describes this node and the cluster as this node sees it.
	Status(ctx context.Context) (store.Status, error)

	// Ready returns nil when this node can serve linearizable reads now, or an
	// error wrapping store.ErrNoLeader or store.ErrTimeout saying why not.
	Ready(ctx context.Context) error

	// Quota describes the stored data against the storage quotas.
	Quota() store.QuotaStatus

	// Backup freezes a point-in-time copy of the data at the read level
	// (linearizable: reflecting every write acknowledged before the call).
	// The caller streams it after ctx may have ended, then closes it.
	Backup(ctx context.Context, level store.ReadLevel) (store.BackupSnapshot, error)

	// Restore replaces the whole dataset on every node with the backup read
	// from body, after verifying it (store.ErrBadBackup: nothing changed). A
	// backup from another cluster, or naming none, is refused unless
	// opts.Force (store.ErrClusterMismatch); one restore runs at a time
	// (store.ErrRestoreInProgress).
	Restore(ctx context.Context, body io.Reader, opts store.RestoreOptions) (store.RestoreResult, error)

	// Membership (admin). Nodes lists every server; Join adds or updates one
	// through the leader; RemoveNode removes one (store.ErrLastVoter,
	// store.ErrNodeNotFound); TransferLeader moves leadership to voter id (""
	// = any) and returns the leader seen afterwards.
	Nodes(ctx context.Context) ([]store.NodeInfo, error)
	Join(ctx context.Context, req store.JoinRequest) (store.JoinAction, error)
	RemoveNode(ctx context.Context, id string) error
	TransferLeader(ctx context.Context, id string) (string, error)

	// NodeReports asks every server for its own report (the dashboard's
	// overview); a server that does not answer in time has Error set.
	NodeReports(ctx context.Context) ([]store.NodeReport, error)
}

// endpoint computes the complete response to one request, or an error that
// resolveError maps to one. It never touches the ResponseWriter.
type endpoint func(r *http.Request) (reply, error)

// route is one path template and the endpoints for its methods.
type route struct {
	template string
	public   bool // served without authentication
	methods  []routeMethod
	// maxBody and timeout, when not zero, replace the body limit and the
	// request deadline (admin transfers are larger and slower than API calls).
	maxBody int64
	timeout time.Duration
}

type routeMethod struct {
	method string
	handle endpoint
}

type api struct {
	cfg  Config
	st   Store
	log  *slog.Logger
	keys credentials

	notFound *apiError           // what an unmatched path answers, naming every route
	metrics  *httpMetrics        // request metrics (metrics.go)
	gatherer prometheus.Gatherer // what GET /metrics serves
	ids      *requestIDs         // request id generator (requestlog.go)
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
	a := &api{cfg: cfg, st: st, log: cfg.Logger, keys: credentials{ring: cfg.Keys},
		gatherer: cfg.Metrics, ids: newRequestIDs()}
	var err error
	if a.metrics, err = newHTTPMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if cfg.APIKey != "" {
		k := NewAPIKey("default", ScopeAdmin, cfg.APIKey)
		a.keys.shortcut = &k
	}
	if cfg.InsecureNoAuth {
		a.log.Warn("authentication is DISABLED (--insecure-no-auth): anyone who reaches the API can read, write and administer the cluster")
	}

	// UseEncodedPath: match on the escaped path so %2F stays inside {key}.
	// SkipClean: never answer with a redirect (a 301 turns a PUT into a GET in
	// many clients); a path that does not match is a 404.
	r := mux.NewRouter().UseEncodedPath().SkipClean(true)
	var item http.Handler
	a.notFound = routeNotFound(a.routeTable())
	for _, rt := range a.routeTable() {
		h := a.serve(rt)
		r.Handle(rt.template, h)
		if rt.template == itemTemplate {
			item = h
		}
	}
	r.NotFoundHandler = a.serve(route{template: "", public: true})
	return &router{mux: r, item: item}, nil
}

// itemTemplate is the route nearly every request takes.
const itemTemplate = "/kv/items/{key}"

// router sends /kv/items/{key} straight to its handler and everything else
// through gorilla/mux. For the item route mux would run a regexp and copy the
// request twice to attach its variables; this match is a prefix test, and
// itemKey reads the key from PathValue. It decides exactly as mux does for
// that template on the escaped path (one non-empty segment after
// /kv/items/), which TestRouterMatchesMux checks.
type router struct {
	mux  *mux.Router
	item http.Handler
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if key, ok := itemPathKey(r.URL.EscapedPath()); ok {
		r.SetPathValue("key", key)
		rt.item.ServeHTTP(w, r)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// itemPathKey returns the still-escaped {key} of an escaped path matching
// itemTemplate.
func itemPathKey(path string) (string, bool) {
	key, ok := strings.CutPrefix(path, "/kv/items/")
	if !ok || key == "" || strings.IndexByte(key, '/') >= 0 {
		return "", false
	}
	return key, true
}

// routeTable lists every route and its methods. gorilla/mux tries routes in
// this order (each is a regexp match), so the item routes, which carry nearly
// all traffic, come first; no two templates match the same path, so the order
// changes nothing else. Authenticated routes need
// the scope routeScopes gives them (auth.go).
func (a *api) routeTable() []route {
	return []route{
		{template: "/kv/items/", methods: []routeMethod{
			{http.MethodGet, a.emptyKey},
			{http.MethodPut, a.emptyKey},
			{http.MethodDelete, a.emptyKey},
		}},
		{template: itemTemplate, methods: []routeMethod{
			{http.MethodGet, a.getItem},
			{http.MethodPut, a.putItem},
			{http.MethodPatch, a.patchItem},
			{http.MethodDelete, a.deleteItem},
		}},
		{template: "/kv/items/{key}/incr", methods: []routeMethod{
			{http.MethodPost, a.incrItem},
		}},
		{template: "/kv/items", methods: []routeMethod{
			{http.MethodGet, a.listItems},
			{http.MethodDelete, a.deletePrefix},
		}},
		{template: "/kv/watch", methods: []routeMethod{
			{http.MethodGet, a.watchItems},
		}},
		{template: txnTemplate, methods: []routeMethod{
			{http.MethodPost, a.txn},
		}},
		{template: "/healthz", public: true, methods: []routeMethod{
			{http.MethodGet, a.healthz},
		}},
		{template: "/readyz", public: true, methods: []routeMethod{
			{http.MethodGet, a.readyz},
		}},
		{template: "/metrics", public: a.cfg.MetricsPublic, methods: []routeMethod{
			{http.MethodGet, a.serveMetrics},
		}},
		{template: "/cluster/status", methods: []routeMethod{
			{http.MethodGet, a.clusterStatus},
		}},
		{template: "/admin/snapshot", methods: []routeMethod{
			{http.MethodGet, a.adminSnapshot},
		}},
		{template: "/admin/restore", maxBody: a.cfg.MaxRestoreBytes, timeout: a.cfg.RestoreTimeout, methods: []routeMethod{
			{http.MethodPost, a.adminRestore},
		}},
		{template: "/debug/state", methods: []routeMethod{
			{http.MethodGet, a.debugState},
		}},
		{template: "/cluster/nodes", methods: []routeMethod{
			{http.MethodGet, a.listNodes},
			{http.MethodPost, a.joinNode},
		}},
		{template: "/cluster/nodes/{id}", methods: []routeMethod{
			{http.MethodDelete, a.removeNode},
		}},
		{template: "/cluster/leader/transfer", methods: []routeMethod{
			{http.MethodPost, a.transferLeader},
		}},
		{template: "/openapi.yaml", public: true, methods: []routeMethod{
			{http.MethodGet, serveOpenAPI},
		}},
		{template: "/cluster/overview", methods: []routeMethod{
			{http.MethodGet, a.clusterOverview},
		}},
		{template: "/auth/whoami", methods: []routeMethod{
			{http.MethodGet, a.whoami},
		}},
		// The dashboard's assets (ui.go): public, they hold no data.
		{template: "/ui", public: true, methods: []routeMethod{
			{http.MethodGet, a.uiRedirect},
		}},
		{template: "/ui/", public: true, methods: []routeMethod{
			{http.MethodGet, a.uiPage},
		}},
		{template: "/ui/{asset}", public: true, methods: []routeMethod{
			{http.MethodGet, a.uiPage},
		}},
	}
}

// Route is one method of one path template the API serves.
type Route struct {
	Method   string
	Template string // gorilla/mux syntax, as in OpenAPI: /kv/items/{key}
	Public   bool   // served without authentication
}

// Routes lists every route and method the handler serves, in route table
// order; /metrics is listed as authenticated (its default). The OpenAPI
// conformance test and the docs check use it, so neither can drift from the
// router.
func Routes() []Route {
	var out []Route
	for _, rt := range (&api{}).routeTable() {
		for _, m := range rt.methods {
			out = append(out, Route{Method: m.method, Template: rt.template, Public: rt.public})
		}
	}
	return out
}

// serveOpenAPI serves GET /openapi.yaml: the API's OpenAPI document (package
// api). It is public: it describes the routes, which are no secret (the
// document ships with the source), holds no data or cluster state, and a
// client or code generator needs it before it has a key.
func serveOpenAPI(*http.Request) (reply, error) {
	return reply{
		status: http.StatusOK,
		header: http.Header{
			"Content-Type":   {"application/yaml"},
			"Content-Length": {strconv.Itoa(len(apispec.OpenAPI))},
		},
		stream: func(w http.ResponseWriter) { _, _ = w.Write(apispec.OpenAPI) },
	}, nil
}

// routeNotFound is the 404 for a path no route matches; its message lists
// the route table's paths, so it never names a route that is gone or misses
// a new one.
func routeNotFound(table []route) *apiError {
	var paths []string
	for _, rt := range table {
		if rt.template != "/kv/items/" { // the empty key: never what a caller is looking for
			paths = append(paths, rt.template)
		}
	}
	e := *errRouteNotFound
	e.message = "No API route matches this path; the routes are " + strings.Join(paths[:len(paths)-1], ", ") +
		" and " + paths[len(paths)-1] + " (encode a \"/\" inside a key as %2F)."
	return &e
}

// maxBodyBytes bounds every request body while it is read.
func (a *api) maxBodyBytes() int64 { return a.cfg.MaxValueBytes + envelopeAllowance }

// serve adapts one route to http.Handler: authentication (before any body is
// read), method dispatch, the request deadline, writing the single response,
// the request id, the request metrics and log. A route with no methods
// answers 404 (the unmatched route).
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
	rm := a.metrics.forRoute(logRoute)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := a.requestID(w, r)
		status := 0
		var caller string // the key name, once authenticated
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic serving request", "method", r.Method, "path", r.URL.EscapedPath(), "request_id", id,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if status == 0 {
					status = errInternal.status
					writeError(w, &errInternal)
				}
			}
			a.finishRequest(rm, r, status, start, caller, id)
		}()

		rep, err := a.dispatch(rt, allowHeader, w, r, &caller)
		if err == nil && rep.later != nil {
			rc := http.NewResponseController(w)
			until := time.Now().Add(rep.laterFor + a.cfg.RequestTimeout + 30*time.Second)
			_ = rc.SetReadDeadline(until) // unsupported writers keep the server's
			_ = rc.SetWriteDeadline(until)
			rep, err = rep.later(r.Context())
		}
		if err != nil {
			e, internal := resolveError(err)
			if e.code == outcomeUnknownUnsafe.code {
				e = outcomeUnknownFor(rt.template, r)
			}
			if internal {
				a.log.Error("request failed", "method", r.Method, "path", r.URL.EscapedPath(), "key", caller, "err", err, "request_id", id)
			}
			status = e.status
			writeError(w, e)
			return
		}
		status = rep.status
		if rep.sse != nil {
			for k, v := range rep.header {
				w.Header()[k] = v
			}
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(rep.status)
			rep.sse(r.Context(), w)
			return
		}
		writeReply(w, rep)
	})
}

// dispatch authenticates (before any body is read), finds the method's
// endpoint, authorizes the key's scope for it and runs it. It records the
// caller's key name (never the key) in *caller for the request log.
func (a *api) dispatch(rt route, allow string, w http.ResponseWriter, r *http.Request, caller *string) (reply, error) {
	if len(rt.methods) == 0 {
		return reply{}, a.notFound
	}
	var key APIKey
	if !rt.public {
		var err error
		if key, err = a.authenticate(r); err != nil {
			return reply{}, err
		}
		*caller = key.Name
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
	if !rt.public {
		if err := authorize(key, r.Method, rt.template); err != nil {
			return reply{}, err
		}
	}
	// Bound the body while it is read: a huge body is cut off, never buffered.
	limit, timeout := a.maxBodyBytes(), a.cfg.RequestTimeout
	if rt.maxBody > 0 {
		limit = rt.maxBody
	}
	if rt.timeout > 0 {
		// A long transfer: the server's read and write timeouts, sized for
		// API calls, become this route's deadline (unsupported writers keep them).
		timeout = rt.timeout
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		_ = rc.SetWriteDeadline(time.Now().Add(timeout + 30*time.Second))
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if !rt.public {
		ctx = context.WithValue(ctx, callerKey{}, key.Name)
	}
	return handle(r.WithContext(ctx))
}

// callerKey is the request context key of the authenticated API key's name.
type callerKey struct{}

// callerName is the name of the API key that authenticated r ("" on public
// routes). Idempotency keys are scoped by it.
func callerName(r *http.Request) string {
	name, _ := r.Context().Value(callerKey{}).(string)
	return name
}
