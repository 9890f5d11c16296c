// Package client is the Go client of quorumkv's HTTP JSON API. It uses the
// standard library only.
//
// New (or FromEnv, which reads the variables kvctl reads) builds a Client
// with its own HTTP/1.1 transport: a pool of keep-alive connections per node
// sized for concurrent callers (Config.MaxConnsPerNode), and HTTPS with a CA
// file or pool, a client certificate and a server name (Config.TLS).
//
// A Client is configured with the URLs of several nodes and an API key. Any
// node serves any request (followers forward writes to the leader), so the
// client sends each request to its current endpoint and, when that fails in a
// way worth retrying, retries on the next one with exponential backoff and
// jitter, for as long as Config.Retry and the caller's context allow.
//
// Retrying a write is made safe by the server's idempotency keys: every write
// (PUT, PATCH, DELETE, incr, bulk delete) carries an Idempotency-Key generated
// once per call and reused by all of that call's attempts, so a write whose
// first attempt was applied but not acknowledged (503 outcome_unknown, a
// connection dropped after the leader committed) is applied at most once, and
// the retry returns the original result. The cluster remembers a key for 10
// minutes of its command time and never forgets one sooner (it answers 503
// idempotency_table_full, retried like any 503, rather than drop a young key);
// Config.Validate keeps a call's whole retry span (RetrySpan: every attempt
// at its full Timeout plus every backoff, cut at CallTimeout) within
// MaxRetrySpan, 5 minutes, so every retry lands inside the window. By default
// a call ends after 30 s (DefaultCallTimeout) even with a background context.
//
// Failures are *APIError values that match the package's sentinel errors with
// errors.Is (ErrNotFound, ErrVersionMismatch, ...). A Client is safe for
// concurrent use by multiple goroutines and holds no goroutines of its own.
package client
