// Package httpapi is quorumkv's client-facing HTTP interface.
//
// It owns routing (gorilla/mux), bearer-token authentication, request
// validation (keys, JSON values, TTLs, sizes), the JSON envelope
// ({"data": ...} on success, {"error": {...}} on failure) and the single table
// that maps store errors to HTTP statuses. It reaches the replicated store only
// through the Store interface declared here, so it never imports raft and is
// tested against a fake.
//
// Routes:
//
//	GET    /healthz               liveness, unauthenticated
//	GET    /readyz                readiness (leader known, caught up), unauthenticated: a status and
//	                              a reason code only; ?verbose with a read-scope key adds the detail
//	GET    /metrics               Prometheus metrics (read scope, or public with MetricsPublic)
//	GET    /cluster/status        this node's view of the cluster
//	GET    /cluster/overview      every node's own report (role, indexes, readiness, traffic counters)
//	GET    /auth/whoami           the calling key's name and scope
//	GET    /ui/                   the dashboard (package ui), public static assets
//	GET    /kv/items/{key}        read (linearizable; ?consistency=stale, ?minIndex=n)
//	PUT    /kv/items/{key}        set {"value": <JSON>, "ttlSeconds": <number>, "keepTtl": <bool>}
//	PATCH  /kv/items/{key}        refresh the expiry {"ttlSeconds": <number>|null}
//	DELETE /kv/items/{key}        delete
//	POST   /kv/items/{key}/incr   counter {"by": <integer>, "ttlSeconds": <number>}
//	GET    /kv/items              list ?prefix=&limit=&cursor=&values= (pages end at MaxListBytes)
//	DELETE /kv/items?prefix=P     delete every key starting with P (in bounded chunks)
//
// Writes honour If-Match (a version, as the ETag sends it), If-None-Match: *
// (PUT only) and Idempotency-Key (scoped by the authenticated API key's name,
// so callers' keys never meet); every condition is checked by the state
// machine, never here. Writes answer X-KV-Index, reads X-KV-Index and, on
// followers, X-KV-Last-Contact-Ms.
//
// Every response carries X-Request-Id: the client's, when it sent a sane one
// (1-128 visible ASCII characters), else a generated one. It is in the request
// log line (requestlog.go), next to method, route template, status, latency
// and the API key's name.
//
// {key} is one path segment, percent-decoded; a "/" inside a key is sent as %2F.
//
// Every handler computes a complete response (status and body) before anything
// is written, and one function writes it, so a handler can never write a status
// and then carry on.
package httpapi
