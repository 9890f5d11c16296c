package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Sentinel errors. Every failure a Client returns for an answered request is
// an *APIError, which matches (errors.Is) the sentinel of its code below; a
// node that could not be reached at all gives an *APIError with code
// "unreachable", matching ErrUnavailable.
var (
	// ErrNotFound: 404 not_found, the key is missing or expired (or, for admin
	// calls, the node id is unknown).
	ErrNotFound = errors.New("not found")
	// ErrVersionMismatch: 412 version_mismatch, If-Match did not match the
	// key's version (or the key is missing). See CurrentVersion.
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrAlreadyExists: 412 already_exists, a create-only PUT found a live key.
	ErrAlreadyExists = errors.New("already exists")
	// ErrNotAnInteger: 409 not_an_integer, incr on a value that is not a
	// 64-bit JSON integer.
	ErrNotAnInteger = errors.New("not an integer")
	// ErrOverflow: 409 overflow, incr would leave the int64 range.
	ErrOverflow = errors.New("integer overflow")
	// ErrUnauthorized: 401, the API key is missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: 403 forbidden, the API key's scope does not allow the call.
	ErrForbidden = errors.New("forbidden")
	// ErrIdempotencyKeyReused: 422, the idempotency key was used for a
	// different request.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused")
	// ErrInsufficientStorage: 507 insufficient_storage, a storage quota of
	// the cluster is reached and the write would add data; nothing was
	// written. Not retried: delete keys or have the operator raise the limit.
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrInvalid: a 400 (the request is malformed) or 413 (too large); the
	// code says which rule it broke.
	ErrInvalid = errors.New("invalid request")
	// ErrOutcomeUnknown: 503 outcome_unknown, the write may or may not have
	// been applied. A Client retries it with the same idempotency key, so a
	// caller sees it only when every attempt failed.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrUnavailable: any 503 (no_leader, timeout, shutting_down,
	// index_not_reached, outcome_unknown, ...) or a node that could not be
	// reached (but not one whose TLS certificate the client rejects). Matched by every such error once retries are exhausted.
	ErrUnavailable = errors.New("unavailable")
	// ErrClusterMismatch: 409 cluster_mismatch, Restore of a backup taken
	// from another cluster (or naming none) without ForceRestore.
	ErrClusterMismatch = errors.New("backup is from another cluster")
	// ErrRestoreInProgress: 409 restore_in_progress, another restore is
	// running in the cluster.
	ErrRestoreInProgress = errors.New("another restore is in progress")
	// ErrTxnCheckFailed: 412 txn_check_failed, a transaction check did not
	// hold; nothing was written. TxnFailure lists the failed checks.
	ErrTxnCheckFailed = errors.New("transaction check failed")
	// ErrTxnOpFailed: 409 txn_op_failed, a transaction operation cannot
	// apply; nothing was written. TxnFailure names it.
	ErrTxnOpFailed = errors.New("transaction operation cannot apply")
	// ErrInvalidOption: the call's options cannot be combined (or a value
	// could not be encoded); nothing was sent.
	ErrInvalidOption = errors.New("invalid option")
	// ErrCompacted: 410 compacted, a watch asked for changes older than the
	// node still holds (OldestIndex says from where it can). Read the state
	// again and watch from the index of that read.
	ErrCompacted = errors.New("watch history compacted")
)

// codeSentinels maps the API's stable error codes to sentinels.
var codeSentinels = map[string]error{
	"not_found":              ErrNotFound,
	"version_mismatch":       ErrVersionMismatch,
	"already_exists":         ErrAlreadyExists,
	"not_an_integer":         ErrNotAnInteger,
	"overflow":               ErrOverflow,
	"unauthorized":           ErrUnauthorized,
	"forbidden":              ErrForbidden,
	"idempotency_key_reused": ErrIdempotencyKeyReused,
	"outcome_unknown":        ErrOutcomeUnknown,
	"cluster_mismatch":       ErrClusterMismatch,
	"restore_in_progress":    ErrRestoreInProgress,
	"insufficient_storage":   ErrInsufficientStorage,
	"compacted":              ErrCompacted,
	"txn_check_failed":       ErrTxnCheckFailed,
	"txn_op_failed":          ErrTxnOpFailed,
}

// APIError is a failed request: the server's error body, or a node that
// could not be reached (Status 0, Code "unreachable", Err set).
type APIError struct {
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Code is the API's stable snake_case code ("not_found", "no_leader", ...).
	Code string
	// Message is the server's human sentence.
	Message string
	// Retryable is the server's hint that repeating the request may succeed;
	// always true for an unreachable node.
	Retryable bool
	// CurrentVersion is the key's version at the time of a 412; 0 when the
	// key was missing or expired (or for any other error).
	CurrentVersion uint64
	// Endpoint is the node that answered (or could not be reached).
	Endpoint string
	// RequestID is the server's X-Request-Id for the failed request (the
	// id its log lines carry); empty when no response arrived.
	RequestID string
	// Err is the transport error when Status is 0.
	Err error
	// OldestIndex is the oldest index a watch may resume from on Endpoint
	// (410 compacted only).
	OldestIndex uint64
	// Index is the X-KV-Index the error response carried (a 404 from Get:
	// the state in which the key was absent); 0 when none.
	Index uint64
	// FailedChecks (412 txn_check_failed) and FailedOp (409 txn_op_failed)
	// say why a transaction wrote nothing.
	FailedChecks []TxnFailedCheck
	FailedOp     *TxnFailedOp
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("quorumkv %s: %v", e.Endpoint, e.Err)
	}
	if e.RequestID != "" {
		return fmt.Sprintf("quorumkv %s: %d %s: %s (request id %s)", e.Endpoint, e.Status, e.Code, e.Message, e.RequestID)
	}
	return fmt.Sprintf("quorumkv %s: %d %s: %s", e.Endpoint, e.Status, e.Code, e.Message)
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Is matches the sentinel of e's code, ErrUnavailable for every 503 and
// unreachable node, and ErrInvalid for 400 and 413.
func (e *APIError) Is(target error) bool {
	if s, ok := codeSentinels[e.Code]; ok && s == target {
		return true
	}
	switch target {
	case ErrUnavailable:
		// A certificate the client rejects is a configuration problem, not
		// an outage: it is neither retried nor reported as unavailable.
		return (e.Status == 0 && !isCertificateError(e.Err)) || e.Status == http.StatusServiceUnavailable
	case ErrInvalid:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}

// CurrentVersion returns the key's current version carried by a 412 error
// (ErrVersionMismatch or ErrAlreadyExists): ok is false when err is not a
// 412; version is 0 when the key was missing or expired.
func CurrentVersion(err error) (version uint64, ok bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusPreconditionFailed {
		return ae.CurrentVersion, true
	}
	return 0, false
}

// errorBody is the server's {"error": {...}} document.
type errorBody struct {
	Error struct {
		Code           string           `json:"code"`
		Message        string           `json:"message"`
		Retryable      bool             `json:"retryable"`
		CurrentVersion json.RawMessage  `json:"currentVersion"`
		FailedChecks   []TxnFailedCheck `json:"failedChecks"`
		FailedOp       *TxnFailedOp     `json:"failedOp"`
		OldestIndex    uint64           `json:"oldestIndex"`
	} `json:"error"`
}

// parseError builds the APIError of a non-2xx response. A body that is not
// the API's error document (a proxy's HTML page, say) still gives a usable
// error: the code is derived from the status, and 502-504 are retryable.
func parseError(endpoint string, status int, requestID string, body []byte) *APIError {
	e := &APIError{Status: status, Endpoint: endpoint, RequestID: requestID}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Retryable = eb.Error.Code, eb.Error.Message, eb.Error.Retryable
		e.OldestIndex = eb.Error.OldestIndex
		e.FailedChecks, e.FailedOp = eb.Error.FailedChecks, eb.Error.FailedOp
		if v := eb.Error.CurrentVersion; len(v) > 0 && string(v) != "null" {
			e.CurrentVersion, _ = strconv.ParseUint(string(v), 10, 64)
		}
		return e
	}
	e.Code = fallbackCode(status)
	e.Message = "the server answered " + strconv.Itoa(status) + " " + http.StatusText(status) + " without an API error body"
	e.Retryable = status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
	return e
}

func fallbackCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "http_" + strconv.Itoa(status)
}
