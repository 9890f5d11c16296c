package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// reply is a complete successful response, computed before anything is written.
type reply struct {
	status int
	body   []byte      // a whole JSON document
	header http.Header // extra headers (ETag, X-KV-Index, ...); may be nil
	// stream, when set, writes a download body in place of body (after the
	// status and header are sent; Content-Type comes from header). It runs
	// after the endpoint returned, so it must not use the request's context.
	stream func(w http.ResponseWriter)
	// sse, when set, streams events (watch.go) after the status and header
	// are sent. ctx is the connection's: cancelled when the client leaves,
	// never by the request deadline.
	sse func(ctx context.Context, w http.ResponseWriter)
	// later, when set, computes the reply after the request deadline is
	// gone, with the connection's context, for at most laterFor plus the
	// request timeout (a blocking read, watch.go).
	later    func(ctx context.Context) (reply, error)
	laterFor time.Duration
}

// dataReply wraps data in the success envelope {"data": data}.
func dataReply(status int, data any) (reply, error) {
	body, err := encodeJSON(struct {
		Data any `json:"data"`
	}{data})
	if err != nil {
		return reply{}, err
	}
	return reply{status: status, body: body}, nil
}

// encodeJSON marshals v followed by a newline. HTML escaping is off: responses
// are never embedded in HTML, and it would rewrite "<", ">" and "&" in strings.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// appendJSONString appends s as a JSON string literal, exactly as encodeJSON
// writes it. Printable ASCII without quotes or backslashes (every key a
// benchmark or a typical client uses) is copied as is.
func appendJSONString(dst []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, err := encodeJSON(s)
	if err != nil { // unreachable: every Go string encodes (invalid UTF-8 becomes U+FFFD)
		panic(err)
	}
	return append(dst, bytes.TrimSuffix(b, []byte("\n"))...)
}

// expiresAtLayout is RFC 3339 in UTC with exactly three fractional digits,
// e.g. 2026-11-26T06:30:00.123Z. Expiry is stamped in whole milliseconds.
const expiresAtLayout = "2006-01-02T15:04:05.000Z"

// expiry marshals an absolute expiry time: null for the zero Time (no
// expiry), otherwise an expiresAtLayout string.
type expiry time.Time

func (e expiry) MarshalJSON() ([]byte, error) {
	return appendExpiry(nil, time.Time(e)), nil
}

func appendExpiry(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, expiresAtLayout)
	return append(dst, '"')
}

var (
	contentTypeJSON = []string{"application/json"}
	cacheNoStore    = []string{"no-store"}
)

// writeReply sends a computed reply. It is the only place a success status is written.
func writeReply(w http.ResponseWriter, rep reply) {
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	if rep.sse != nil {
		panic("httpapi: writeReply given an event stream; serve runs it") // programming error
	}
	if rep.stream != nil {
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(rep.status)
		rep.stream(w)
		return
	}
	// Direct map writes with canonical names: Header.Set would canonicalise
	// and allocate a slice per header on every response. net/http only reads
	// these slices, so the constant ones are shared.
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(rep.body))}
	h["Cache-Control"] = cacheNoStore // responses carry data behind a credential
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body) // a write error means the client left; nothing to do
}

// writeError sends e as {"error": {...}} with its headers. It is the only
// place an error status is written.
func writeError(w http.ResponseWriter, e *apiError) {
	eb := errorBody{Code: e.code, Message: e.message, Retryable: e.retryable, Reason: e.reason, FailedChecks: e.failedChecks, FailedOp: e.failedOp}
	if e.hasOldest {
		eb.OldestIndex = &e.oldest
	}
	if e.index != 0 {
		w.Header().Set(headerIndex, strconv.FormatUint(e.index, 10))
	}
	if e.withVersion {
		eb.CurrentVersion = json.RawMessage("null")
		if e.current != 0 {
			eb.CurrentVersion = strconv.AppendUint(nil, e.current, 10)
		}
	}
	body, err := encodeJSON(struct {
		Error errorBody `json:"error"`
	}{eb})
	if err != nil { // unreachable: three plain fields
		panic(err)
	}
	h := w.Header()
	if e.retryAfter {
		h.Set("Retry-After", "1")
	}
	if e.allow != "" {
		h.Set("Allow", e.allow)
	}
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="quorumkv"`)
	}
	writeReply(w, reply{status: e.status, body: body})
}

type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
	// Reason refines Code where one code has several causes (not_ready).
	Reason string `json:"reason,omitempty"`
	// CurrentVersion is present on 412 responses only: the key's current
	// version, or null when it does not exist.
	CurrentVersion json.RawMessage `json:"currentVersion,omitempty"`
	// OldestIndex is present on 410 compacted only: the oldest index a
	// watch may start from on this node.
	OldestIndex *uint64 `json:"oldestIndex,omitempty"`
	// FailedChecks (412 txn_check_failed) and FailedOp (409 txn_op_failed)
	// say why a transaction wrote nothing.
	FailedChecks []txnFailedCheckBody `json:"failedChecks,omitempty"`
	FailedOp     *txnFailedOpBody     `json:"failedOp,omitempty"`
}
