// Package kvfake is an in-memory fake of quorumkv's HTTP API for tests of
// code that talks to it (the client package, kvctl, the examples). It speaks
// the real JSON shapes, status codes, error codes, ETags, conditional writes,
// TTLs, incr, listing with cursors, idempotency keys, scoped API keys and
// the admin routes, and lets a test inject failures per endpoint. Its answers
// are held to the real server's by one table of requests run against both
// (conformance_test.go); it shares the client package's types for the
// shapes the client reads.
//
// One Server holds the state; every Handler made from it is one "node"
// serving that same state, so several httptest servers over one Server behave
// like the nodes of a cluster. It is not a model of raft: writes apply
// instantly and every read is current.
package kvfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Fault is a failure a Handler injects into one request.
type Fault int

const (
	// NoFault serves the request normally.
	NoFault Fault = iota
	// Unavailable answers 503 no_leader (retryable) without doing anything.
	Unavailable
	// OutcomeUnknown applies the write (recording its idempotency key, as a
	// committed raft entry would), then answers 503 outcome_unknown, as a
	// leader killed between commit and reply does. Reads are served normally.
	OutcomeUnknown
	// DropAfterApply applies the write, then closes the connection without
	// an answer. Reads are served normally.
	DropAfterApply
)

// Injector picks the Fault for a request; nil means NoFault always. It is
// called on the request's goroutine, concurrently with other requests.
type Injector func(r *http.Request) Fault

// Server is the shared state of a fake cluster. Its methods are safe for
// concurrent use.
type Server struct {
	mu      sync.Mutex
	now     func() time.Time
	keys    map[string]string // API key secret → scope ("read", "write", "admin")
	index   uint64            // the last "log index"; versions come from it
	items   map[string]*entry
	idem    map[string]*idemEntry
	applied int // successful writes, replays excluded
	nodes   []Node
	leader  string

	requestIDs atomic.Uint64 // generated X-Request-Id values
}

type entry struct {
	value     json.RawMessage // compact JSON
	version   uint64
	expiresAt time.Time // zero: never
}

type idemEntry struct {
	fingerprint [32]byte
	resp        response
}

// Node is a server as GET /cluster/nodes lists it: the client's type, so
// the fake answers exactly the shape the client reads.
type Node = client.Node

// New returns an empty Server with three nodes (n1, the leader, n2, n3), no
// API keys (every request is accepted) and the real clock.
func New() *Server {
	s := &Server{now: time.Now, items: map[string]*entry{}, idem: map[string]*idemEntry{}, leader: "n1"}
	for i := 1; i <= 3; i++ {
		id := "n" + strconv.Itoa(i)
		s.nodes = append(s.nodes, Node{ID: id, PeerAddr: "127.0.0.1:908" + strconv.Itoa(i),
			HTTPAddr: "127.0.0.1:808" + strconv.Itoa(i), Suffrage: "voter", Healthy: true, Version: version.Get().Version})
	}
	return s
}

// SetClock replaces the clock that stamps and judges expiry.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// AddAPIKey makes the server require "Authorization: Bearer <secret>" and
// accept secret with scope "read", "write" or "admin" (each including the
// ones before it). Without any key every request is accepted.
func (s *Server) AddAPIKey(secret, scope string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]string{}
	}
	s.keys[secret] = scope
}

// Applied returns how many writes succeeded (replays of an idempotency key
// excluded). Tests prove "at most once" with it.
func (s *Server) Applied() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Value returns the live value at key.
func (s *Server) Value(key string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.live(key)
	if e == nil {
		return nil, false
	}
	return e.value, true
}

// Nodes returns the current membership.
func (s *Server) Nodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Node(nil), s.nodes...)
}

// Leader returns the current leader's id.
func (s *Server) Leader() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// live returns key's entry if it exists and has not expired. Caller holds mu.
func (s *Server) live(key string) *entry {
	e := s.items[key]
	if e == nil || (!e.expiresAt.IsZero() && !s.now().Before(e.expiresAt)) {
		return nil
	}
	return e
}

// response is a complete answer, kept for idempotent replays.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) write(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

func dataResp(status int, data any) response {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // values come back byte for byte, as from the real server
	if err := enc.Encode(struct {
		Data any `json:"data"`
	}{data}); err != nil {
		panic(err) // the fake only marshals its own plain types
	}
	return response{status: status, header: http.Header{}, body: buf.Bytes()}
}

// errResp is an API error. current, for 412s, is the key's version (0: null).
func errResp(status int, code, msg string, retryable bool) response {
	return errRespVersion(status, code, msg, retryable, false, 0)
}

func errRespVersion(status int, code, msg string, retryable, withVersion bool, current uint64) response {
	eb := map[string]any{"code": code, "message": msg, "retryable": retryable}
	if withVersion {
		eb["currentVersion"] = nil
		if current != 0 {
			eb["currentVersion"] = current
		}
	}
	b, _ := json.Marshal(map[string]any{"error": eb})
	h := http.Header{}
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="quorumkv"`)
	}
	return response{status: status, header: h, body: append(b, '\n')}
}

// Handler returns one node of the fake cluster, injecting inject's faults.
func (s *Server) Handler(inject Injector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As the real server: answers are never cached (they carry data
		// behind a credential), and each names its request.
		w.Header().Set("Cache-Control", "no-store")
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = "fake-" + strconv.FormatUint(s.requestIDs.Add(1), 10)
		}
		w.Header().Set("X-Request-Id", id)
		fault := NoFault
		if inject != nil {
			fault = inject(r)
		}
		if fault == Unavailable {
			errResp(http.StatusServiceUnavailable, "no_leader", "fake: no leader", true).write(w)
			return
		}
		s.route(w, r, fault)
	})
}

// validRequestID is the real server's rule for a client's X-Request-Id:
// 1-128 visible ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

var scopeRank = map[string]int{"read": 1, "write": 2, "admin": 3}

// authorize checks the bearer key against the scope a route needs.
func (s *Server) authorize(r *http.Request, need string) (response, bool) {
	s.mu.Lock()
	keys := s.keys
	s.mu.Unlock()
	if keys == nil {
		return response{}, true
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	scope, ok := keys[strings.TrimSpace(tok)]
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		return errResp(http.StatusUnauthorized, "unauthorized", "fake: missing or wrong API key", false), false
	}
	if scopeRank[scope] < scopeRank[need] {
		return errResp(http.StatusForbidden, "forbidden", "fake: this key's scope ("+scope+") does not allow this request", false), false
	}
	return response{}, true
}

// route dispatches on the escaped path, so "%2F" inside a key stays in it.
func (s *Server) route(w http.ResponseWriter, r *http.Request, fault Fault) {
	path := r.URL.EscapedPath()
	need := "read"
	if r.Method != http.MethodGet {
		need = "write"
	}
	// As the real server's route scopes: listing nodes is a read, changing
	// membership, leadership and the dataset as a whole needs admin.
	if (strings.HasPrefix(path, "/cluster/nodes") && !(path == "/cluster/nodes" && r.Method == http.MethodGet)) ||
		strings.HasPrefix(path, "/cluster/leader") || strings.HasPrefix(path, "/admin/") {
		need = "admin"
	}
	if path != "/healthz" {
		if resp, ok := s.authorize(r, need); !ok {
			resp.write(w)
			return
		}
	}
	switch {
	case path == "/healthz":
		dataResp(http.StatusOK, map[string]string{"status": "ok"}).write(w)
	case path == "/cluster/status":
		s.status(w, r)
	case path == "/cluster/nodes" || strings.HasPrefix(path, "/cluster/nodes/"):
		s.nodesRoute(w, r, strings.TrimPrefix(strings.TrimPrefix(path, "/cluster/nodes"), "/"))
	case path == "/cluster/leader/transfer":
		s.transfer(w, r)
	case path == "/admin/snapshot":
		s.snapshot(w, r)
	case path == "/admin/restore":
		s.restore(w, r)
	case path == "/kv/txn":
		s.txn(w, r, fault)
	case path == "/kv/items":
		s.itemsRoute(w, r, fault)
	case strings.HasPrefix(path, "/kv/items/"):
		s.itemRoute(w, r, fault, strings.TrimPrefix(path, "/kv/items/"))
	default:
		errResp(http.StatusNotFound, "not_found", "fake: no such route", false).write(w)
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	errResp(http.StatusMethodNotAllowed, "method_not_allowed", "fake: use "+allow, false).write(w)
}

// fingerprint identifies a write like the real server does: method, target,
// preconditions as sent and the exact body, each length-prefixed.
func fingerprint(r *http.Request, target string, body []byte) [32]byte {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(r.Method), []byte(target),
		[]byte(strings.Join(r.Header.Values("If-Match"), "\x00")),
		[]byte(strings.Join(r.Header.Values("If-None-Match"), "\x00")), body} {
		h.Write(binary.AppendUvarint(nil, uint64(len(p))))
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// write runs apply (under the lock) at most once per idempotency key and
// answers, injecting fault after the apply. Like the real server, the
// result of a failed condition (412, 409) is remembered and replayed too.
func (s *Server) write(w http.ResponseWriter, r *http.Request, fault Fault, target string, body []byte, apply func() response) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 128 || strings.ContainsAny(key, " \t") {
		errResp(http.StatusBadRequest, "invalid_idempotency_key", "fake: bad Idempotency-Key", false).write(w)
		return
	}
	fp := fingerprint(r, target, body)
	// Keys are remembered per API key, as the real server scopes them by the
	// key's name (here the fake's keys have no names; the secret stands in).
	scoped := r.Header.Get("Authorization") + "\x00" + key
	s.mu.Lock()
	var resp response
	if prev, ok := s.idem[scoped]; ok && key != "" {
		if prev.fingerprint != fp {
			resp = errResp(422, "idempotency_key_reused", "fake: this Idempotency-Key was used for a different request", false)
		} else {
			resp = prev.resp
		}
		s.mu.Unlock()
		resp.write(w)
		return
	}
	resp = apply()
	if resp.status < 400 {
		s.applied++
	}
	if resp.status < 400 || resp.status == http.StatusPreconditionFailed || resp.status == http.StatusConflict {
		if key != "" {
			s.idem[scoped] = &idemEntry{fingerprint: fp, resp: resp}
		}
	}
	s.mu.Unlock()
	switch fault {
	case OutcomeUnknown:
		// Retryable as the real server says it: only when repeating is safe.
		safe := key != "" || (r.Method != http.MethodPost && len(r.Header.Values("If-Match")) == 0 && len(r.Header.Values("If-None-Match")) == 0)
		errResp(http.StatusServiceUnavailable, "outcome_unknown", "fake: the write may or may not have been applied", safe).write(w)
	case DropAfterApply:
		panic(http.ErrAbortHandler)
	default:
		resp.write(w)
	}
}
