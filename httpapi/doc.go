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
//	GET    /healthz          liveness, unauthenticated
//	GET    /readyz           readiness (leader known, caught up), unauthenticated
//	GET    /cluster/status   this node's view of the cluster
//	GET    /kv/items/{key}   linearizable read
//	PUT    /kv/items/{key}   set {"value": <JSON>, "ttlSeconds": <number>}
//	DELETE /kv/items/{key}   delete
//
// {key} is one path segment, percent-decoded; a "/" inside a key is sent as %2F.
//
// Every handler computes a complete response (status and body) before anything
// is written, and one function writes it, so a handler can never write a status
// and then carry on.
package httpapi
