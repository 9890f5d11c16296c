package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/quorumkv/quorumkv/store"
)

// apiError is a failure with a fixed HTTP meaning. Request validation returns
// one directly; store errors are translated by storeErrors; anything else
// becomes errInternal. Its fields become the JSON error body and headers.
type apiError struct {
	status    int
	code      string // stable snake_case identifier clients switch on
	message   string // a sentence: what happened and what to do
	retryable bool   // repeating the same request may succeed

	retryAfter bool   // send "Retry-After: 1"
	reason     string // a short code refining code (not_ready), sent as "reason" when set
	allow      string // Allow header value, for 405

	// withVersion adds "currentVersion" to the body: current, or null when
	// current is 0 (the key is missing or expired). Used by 412 responses.
	withVersion bool
	current     uint64

	// oldest (with hasOldest) is a 410 compacted's oldest index served.
	oldest    uint64
	hasOldest bool
	// index, when not 0, is sent as X-KV-Index (a blocking read's 404).
	index uint64
	// A failed transaction (txn.go): every failed check, or the operation
	// that cannot apply.
	failedChecks []txnFailedCheckBody
	failedOp     *txnFailedOpBody
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// storeErrors is the one table mapping errors from Store (matched with
// errors.Is, first match wins) to responses. ErrOutcomeUnknown comes first: if
// an error carries it alongside another sentinel, "the write may have
// happened" is the fact the client must not miss.
var storeErrors = []struct {
	target error
	resp   apiError
}{
	// serve replaces this entry by outcomeUnknownFor's, which decides
	// "retryable" from the request (outcome.go).
	{store.ErrOutcomeUnknown, outcomeUnknownUnsafe},
	{store.ErrNotFound, apiError{
		status: http.StatusNotFound, code: "not_found",
		message: "No item exists at this key (it was never written, was deleted, or has expired).",
	}},
	{store.ErrDiskFailed, apiError{
		status: http.StatusServiceUnavailable, code: "disk_error", retryable: true, retryAfter: true,
		message: diskErrorMessage,
	}},
	{store.ErrNoLeader, apiError{
		status: http.StatusServiceUnavailable, code: "no_leader", retryable: true, retryAfter: true,
		message: "The cluster has no reachable leader right now and nothing was changed; retry after a short delay.",
	}},
	{store.ErrShuttingDown, apiError{
		status: http.StatusServiceUnavailable, code: "shutting_down", retryable: true, retryAfter: true,
		message: "This node is shutting down and did not process the request; retry, preferably against another node.",
	}},
	{store.ErrVersionMismatch, apiError{
		status: http.StatusPreconditionFailed, code: "version_mismatch", withVersion: true,
		message: "The key's current version does not match If-Match (or the key does not exist); nothing was written. Read the key, then retry with its current version.",
	}},
	{store.ErrAlreadyExists, apiError{
		status: http.StatusPreconditionFailed, code: "already_exists", withVersion: true,
		message: "The key already exists and If-None-Match: * allows only creating it; nothing was written.",
	}},
	{store.ErrNotAnInteger, apiError{
		status: http.StatusConflict, code: "not_an_integer",
		message: "The key holds a value that is not a JSON integer within the signed 64-bit range; nothing was written.",
	}},
	{store.ErrOverflow, apiError{
		status: http.StatusConflict, code: "overflow",
		message: "The increment would take the counter outside the signed 64-bit range; nothing was written.",
	}},
	{store.ErrIdempotencyKeyReused, apiError{
		status: 422, code: "idempotency_key_reused",
		message: "This Idempotency-Key was already used for a different request in the last 10 minutes; nothing was written. Use a new key for a new request.",
	}},
	{store.ErrQuotaExceeded, apiError{
		status: http.StatusInsufficientStorage, code: "insufficient_storage",
		message: "The cluster's storage quota is reached (--max-keys or --max-data-bytes) and this write would add data; nothing was written. Free space by deleting keys (DELETE, or a shorter TTL with PATCH), or have the operator raise the limit. Deletes, PATCH and writes that do not grow the data still work.",
	}},
	{store.ErrIdempotencyTableFull, apiError{
		status: http.StatusServiceUnavailable, code: "idempotency_table_full", retryable: true, retryAfter: true,
		message: "The cluster's Idempotency-Key table is full of keys still inside their 10-minute window, so this new key could not be remembered; nothing was written. Retry shortly (keys age out continuously), or ask the operator to raise --idempotency-max-bytes.",
	}},
	{store.ErrIndexNotReached, apiError{
		status: http.StatusServiceUnavailable, code: "index_not_reached", retryable: true, retryAfter: true,
		message: "This node had not applied the requested minIndex before the deadline; retry, or read from another node.",
	}},
	{store.ErrBadBackup, apiError{
		status: http.StatusBadRequest, code: "invalid_backup",
		message: "The request body is not an intact quorumkv backup (truncated, corrupted or not a backup file); nothing was changed. Send a file saved from GET /admin/snapshot.",
	}},
	{store.ErrClusterMismatch, apiError{
		status: http.StatusConflict, code: "cluster_mismatch",
		message: "The backup was taken from another cluster, or is an older file that names no cluster; nothing was changed. Check it is the file you mean, then send it again with ?force=true to replace this cluster's data with it anyway.",
	}},
	{store.ErrRestoreInProgress, apiError{
		status: http.StatusConflict, code: "restore_in_progress",
		message: "Another restore is in progress in this cluster; nothing was changed. One restore runs at a time: wait for it to finish (one abandoned by its sender stops blocking after 30 s), then send this one again.",
	}},
	{store.ErrRestoreInterrupted, apiError{
		status: http.StatusServiceUnavailable, code: "restore_interrupted", retryable: true, retryAfter: true,
		message: "The restore stopped before it was committed (leader change, another restore, or the deadline); the dataset is unchanged. Send the restore again.",
	}},
	{store.ErrNodeNotFound, apiError{
		status: http.StatusNotFound, code: "node_not_found",
		message: "No server with this id is in the cluster configuration; GET /cluster/nodes lists the members.",
	}},
	{store.ErrLastVoter, apiError{
		status: http.StatusConflict, code: "last_voter",
		message: "This server is the cluster's last voter and cannot be removed; add another node first.",
	}},
	{store.ErrNodeConflict, apiError{
		status: http.StatusConflict, code: "node_conflict",
		message: "Another node already uses this peer address; remove that node first (DELETE /cluster/nodes/{id}), then join again.",
	}},
	{store.ErrNotVoter, apiError{
		status: http.StatusConflict, code: "not_voter",
		message: "Leadership can only move to a voter; this node is a non-voter (it is promoted once it has caught up).",
	}},
	{store.ErrTransferFailed, apiError{
		status: http.StatusServiceUnavailable, code: "transfer_failed", retryable: true, retryAfter: true,
		message: "The leader could not hand leadership over (no other voter caught up in time); nothing was changed, retry shortly.",
	}},
	{store.ErrInvalidNode, apiError{
		status: http.StatusBadRequest, code: "invalid_node",
		message: `The join request is invalid: send {"id": "<id>", "peerAddr": "<host:port>", "httpAddr": "<url>"} with non-empty id and peerAddr, without spaces, at most 256 bytes each.`,
	}},
	{store.ErrClockOffset, apiError{
		status: http.StatusServiceUnavailable, code: "clock_offset", retryable: true, retryAfter: true,
		message: "The node that must decide the time has a clock outside --max-clock-offset of a majority of the cluster, and leadership did not move to a node within it in time (or the transfer target's clock is not within it); nothing was changed. Retry shortly; if it persists, fix the nodes' clock synchronisation (GET /cluster/nodes shows every clock's offset).",
	}},
	{store.ErrPeerUnauthenticated, apiError{
		status: http.StatusServiceUnavailable, code: "peer_unauthenticated",
		message: "The leader refused the request this node forwarded because this node's peer connection is not authenticated as a cluster member; nothing was changed. Give every node a member certificate for peer mutual TLS.",
	}},
	{store.ErrTimeout, errTimeout},
	{context.DeadlineExceeded, errTimeout},
	// The client went away (or the server is closing the connection); nobody is
	// likely to read this, but it is not an internal failure worth an error log.
	{context.Canceled, apiError{
		status: http.StatusServiceUnavailable, code: "canceled", retryable: true,
		message: "The request was canceled before it completed; send it again if you still need it.",
	}},
}

var errTimeout = apiError{
	status: http.StatusServiceUnavailable, code: "timeout", retryable: true, retryAfter: true,
	message: "The request did not complete before its deadline; retry after a short delay.",
}

var errInternal = apiError{
	status: http.StatusInternalServerError, code: "internal",
	message: "The server hit an unexpected error; the request may or may not have taken effect. Retry later and report it to the operator if it persists.",
}

// resolveError turns any error a handler returned into the response to send.
// internal is true when err matched nothing and must be logged.
func resolveError(err error) (resp *apiError, internal bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae, false
	}
	var ie *store.InvalidError
	if errors.As(err, &ie) {
		return invalidWrite(ie), false
	}
	if resp, ok := txnError(err); ok {
		return resp, false
	}
	for i := range storeErrors {
		if errors.Is(err, storeErrors[i].target) {
			resp := &storeErrors[i].resp
			var ce *store.ConditionError
			if resp.withVersion && errors.As(err, &ce) {
				withCurrent := *resp
				withCurrent.current = ce.CurrentVersion
				resp = &withCurrent
			}
			return resp, false
		}
	}
	return &errInternal, true
}

// Request validation errors. Each constructor names the code it produces.

func errInvalidKey(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_key", message: msg}
}

func errInvalidJSON(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_json", message: msg}
}

func errInvalidTTL(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_ttl", message: msg}
}

func errTooLarge(msg string) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large", message: msg}
}

var errMissingValue = &apiError{
	status: http.StatusBadRequest, code: "missing_value",
	message: `The request body has no "value" field; send {"value": <any JSON value>} (use "value": null to store null).`,
}

var errRouteNotFound = &apiError{
	status: http.StatusNotFound, code: "not_found",
	message: "No API route matches this path (GET /openapi.yaml describes every route; encode a \"/\" inside a key as %2F).",
}

func errUnauthorized(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "unauthorized", message: msg}
}

func errMethodNotAllowed(method, allow string) *apiError {
	return &apiError{
		status: http.StatusMethodNotAllowed, code: "method_not_allowed", allow: allow,
		message: "Method " + method + " is not supported on this route; use one of: " + allow + ".",
	}
}

func errInvalidParameter(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_parameter", message: msg}
}

func errInvalidPrecondition(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_precondition", message: msg}
}

func errInvalidIdempotencyKey(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_idempotency_key", message: msg}
}

// invalidWrite answers a write the store refused as breaking one of its
// rules (store/validate.go): the same status and code as when this layer
// finds the problem itself, with the store's reason.
func invalidWrite(ie *store.InvalidError) *apiError {
	msg := sentence(ie) + " Nothing was written."
	switch ie.Err {
	case store.ErrInvalidKey:
		return errInvalidKey(msg)
	case store.ErrInvalidValue:
		return errInvalidJSON(msg)
	case store.ErrValueTooLarge:
		return errTooLarge(msg)
	case store.ErrInvalidTTL:
		return errInvalidTTL(msg)
	case store.ErrInvalidIdempotencyKey:
		return errInvalidIdempotencyKey(msg)
	}
	return errInvalidParameter(msg) // ErrInvalidPrefix, ErrInvalidWrite
}
