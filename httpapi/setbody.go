package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/store"
)

// envelopeAllowance is how many bytes a PUT body may carry beyond
// MaxValueBytes: room for {"value": ..., "ttlSeconds": ...} and modest
// whitespace. A value pretty-printed with more whitespace than this must be
// compacted by the client.
const envelopeAllowance = 16 << 10

// setRequest is a validated PUT body.
type setRequest struct {
	value   []byte        // the client's value with insignificant whitespace removed, otherwise byte-for-byte
	ttl     time.Duration // 0: no expiry
	keepTTL bool          // keep the live key's expiry; ttl is then 0
}

// readBody reads the whole request body, which the dispatcher has already
// bounded with http.MaxBytesReader. A declared Content-Length over the limit
// is refused before reading a byte.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errBodyTooLarge(limit)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge(limit)
		}
		return nil, errInvalidJSON("The request body could not be read completely; send it again.")
	}
	return body, nil
}

func errBodyTooLarge(limit int64) *apiError {
	return errTooLarge(fmt.Sprintf("The request body is larger than %d bytes; values may be at most %d bytes of compact JSON.",
		limit, limit-envelopeAllowance))
}

// parseSetBody validates a PUT body (see parseSetBodyStrict for the rules).
// The common well-formed body takes scanSetBody's allocation-free path; any
// body that path declines, valid or not, goes through parseSetBodyStrict,
// which decides it and words the error. Both give the same result for every
// body the fast path accepts (FuzzSetBodyFastMatchesStrict).
func parseSetBody(body []byte, maxValueBytes int64) (setRequest, error) {
	if req, ok := scanSetBody(body, maxValueBytes); ok {
		return req, nil
	}
	return parseSetBodyStrict(body, maxValueBytes)
}

// parseSetBodyStrict validates a PUT body: exactly one JSON object whose only fields
// are "value" (required, any JSON value, including null) and "ttlSeconds"
// (optional number or null), with nothing after it. Field names match exactly
// (encoding/json's case-insensitive matching would accept "VALUE") and a field
// may appear once.
//
// The value is kept as raw bytes and only compacted, never decoded, so big
// integers, long decimals and string escapes survive exactly.
func parseSetBodyStrict(body []byte, maxValueBytes int64) (setRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return setRequest{}, errInvalidJSON(`The request body is empty; send a JSON object such as {"value": 42, "ttlSeconds": 60}.`)
	}
	if !utf8.Valid(body) {
		return setRequest{}, errInvalidJSON("The request body is not valid UTF-8; JSON must be UTF-8 encoded.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a top-level number like 1e400 is then "not an object", not a float overflow
	if tok, err := dec.Token(); err != nil {
		return setRequest{}, jsonSyntaxError(err)
	} else if tok != json.Delim('{') {
		return setRequest{}, errInvalidJSON(fmt.Sprintf(`The request body is %s; it must be a JSON object such as {"value": 42}.`, tokenKind(tok)))
	}
	var f setFields
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return setRequest{}, jsonSyntaxError(err)
		}
		name, _ := tok.(string) // inside an object the decoder only yields string keys here
		dst := f.slot(name)
		if dst == nil {
			return setRequest{}, errInvalidJSON(fmt.Sprintf(`The request body has unknown field %q; the only fields are "value", "ttlSeconds" and "keepTtl".`, clip(name)))
		}
		if *dst != nil {
			return setRequest{}, errInvalidJSON(fmt.Sprintf("The request body has field %q more than once; send it once.", name))
		}
		if err := dec.Decode((*json.RawMessage)(dst)); err != nil {
			return setRequest{}, jsonSyntaxError(err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return setRequest{}, jsonSyntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return setRequest{}, errInvalidJSON("The request body has data after the JSON object; send exactly one object.")
	}

	return f.request(maxValueBytes, true)
}

// setFields are a PUT body's raw members, as either parser found them.
type setFields struct{ value, ttl, keep []byte }

// slot is where the member called name goes; nil for a name that is not a field.
func (f *setFields) slot(name string) *[]byte {
	switch name {
	case "value":
		return &f.value
	case "ttlSeconds":
		return &f.ttl
	case "keepTtl":
		return &f.keep
	}
	return nil
}

// request checks the members of a syntactically valid body and builds the
// setRequest. compact: the value may hold insignificant whitespace to remove
// (the strict parser always says so; the scanner knows).
func (f setFields) request(maxValueBytes int64, compact bool) (setRequest, error) {
	if f.value == nil {
		return setRequest{}, errMissingValue
	}
	var req setRequest
	if f.keep != nil {
		switch string(f.keep) {
		case "true":
			req.keepTTL = true
		case "false":
		default:
			return setRequest{}, errInvalidJSON(`"keepTtl" must be true or false.`)
		}
	}
	if req.keepTTL && f.ttl != nil {
		return setRequest{}, errInvalidTTL(`"keepTtl": true keeps the current expiry, so "ttlSeconds" cannot be sent with it; send one of them.`)
	}
	if f.ttl != nil {
		d, err := parseTTL(f.ttl)
		if err != nil {
			return setRequest{}, err
		}
		req.ttl = d
	}
	req.value = f.value
	if compact {
		var buf bytes.Buffer
		if err := json.Compact(&buf, f.value); err != nil { // unreachable: both parsers validated it
			return setRequest{}, errInvalidJSON("The value is not valid JSON: " + err.Error() + ".")
		}
		req.value = buf.Bytes()
	}
	// The store's value rule (store.CheckValue), the one the leader applies
	// again to every write, forwarded or not.
	if err := store.CheckValue(req.value, maxValueBytes); err != nil {
		if errors.Is(err, store.ErrValueTooLarge) {
			return setRequest{}, errTooLarge(sentence(err))
		}
		return setRequest{}, errInvalidJSON(sentence(err))
	}
	return req, nil
}

// jsonSyntaxError describes a decoder error to the client.
func jsonSyntaxError(err error) *apiError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return errInvalidJSON(fmt.Sprintf("The request body is not valid JSON: %s at byte %d.", se.Error(), se.Offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errInvalidJSON("The request body ends before its JSON object is complete; send a whole object.")
	default:
		return errInvalidJSON("The request body is not valid JSON: " + err.Error() + ".")
	}
}

// tokenKind names the JSON type of a top-level token that is not '{'.
func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return "not a JSON value"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

// clip shortens client-supplied text echoed in an error message, so a huge
// field name is not sent back whole.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseObject validates a body that must be one JSON object whose fields are
// among allowed, each at most once, and returns the raw value of each field
// present. An empty body is an empty object when emptyOK.
func parseObject(body []byte, emptyOK bool, allowed ...string) (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return fields, nil
		}
		return nil, errInvalidJSON(fmt.Sprintf("The request body is empty; send a JSON object with %s.", quoteList(allowed)))
	}
	if !utf8.Valid(body) {
		return nil, errInvalidJSON("The request body is not valid UTF-8; JSON must be UTF-8 encoded.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil {
		return nil, jsonSyntaxError(err)
	} else if tok != json.Delim('{') {
		return nil, errInvalidJSON(fmt.Sprintf("The request body is %s; it must be a JSON object with %s.", tokenKind(tok), quoteList(allowed)))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonSyntaxError(err)
		}
		name, _ := tok.(string)
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return nil, errInvalidJSON(fmt.Sprintf("The request body has unknown field %q; the only fields are %s.", clip(name), quoteList(allowed)))
		}
		if _, dup := fields[name]; dup {
			return nil, errInvalidJSON(fmt.Sprintf("The request body has field %q more than once; send it once.", name))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonSyntaxError(err)
		}
		fields[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonSyntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errInvalidJSON("The request body has data after the JSON object; send exactly one object.")
	}
	return fields, nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, " and ")
}

// parseInt64Field parses raw as a JSON integer (no fraction or exponent)
// within int64.
func parseInt64Field(name string, raw json.RawMessage) (int64, error) {
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	bad := digits == "" || (digits[0] == '0' && len(digits) > 1)
	for i := 0; i < len(digits) && !bad; i++ {
		bad = digits[i] < '0' || digits[i] > '9'
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if bad || err != nil {
		return 0, errInvalidJSON(fmt.Sprintf("%q must be an integer from -9223372036854775808 to 9223372036854775807, without a fraction or exponent.", name))
	}
	return n, nil
}
