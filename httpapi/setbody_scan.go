package httpapi

import (
	"bytes"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/store"
)

// scanSetBody is the fast path of parseSetBody: one pass over the body with
// no reflection and, for an already compact value, no allocation. It accepts
// only what parseSetBodyStrict accepts, and returns the same setRequest for
// it; anything else (an error of any kind, an escaped field name, a value
// nested deeper than store.ScanJSONValue follows) it declines with ok false, and the strict
// parser decides and explains. Declining is always safe, accepting is a
// promise: FuzzSetBodyFastMatchesStrict checks it.
//
// The value it returns may alias body (when body needed no compaction).
func scanSetBody(body []byte, maxValueBytes int64) (req setRequest, ok bool) {
	if !utf8.Valid(body) {
		return setRequest{}, false
	}
	i := store.SkipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return setRequest{}, false
	}
	i = store.SkipJSONSpace(body, i+1)
	var f setFields
	valueSpaced := false
	for {
		// A field: "name" : value
		if i >= len(body) || body[i] != '"' {
			return setRequest{}, false // includes the empty object: no value
		}
		end := bytes.IndexByte(body[i+1:], '"')
		if end < 0 {
			return setRequest{}, false
		}
		name := body[i+1 : i+1+end]
		if bytes.IndexByte(name, '\\') >= 0 {
			return setRequest{}, false // escaped names are rare: the strict parser decodes them
		}
		dst := f.slot(string(name))
		if dst == nil || *dst != nil {
			return setRequest{}, false // an unknown or duplicate field
		}
		i = store.SkipJSONSpace(body, i+2+end)
		if i >= len(body) || body[i] != ':' {
			return setRequest{}, false
		}
		i = store.SkipJSONSpace(body, i+1)
		vend, spaced, vok := store.ScanJSONValue(body, i)
		if !vok {
			return setRequest{}, false
		}
		*dst = body[i:vend]
		if dst == &f.value {
			valueSpaced = spaced
		}
		i = store.SkipJSONSpace(body, vend)
		if i >= len(body) {
			return setRequest{}, false
		}
		if body[i] == '}' {
			i++
			break
		}
		if body[i] != ',' {
			return setRequest{}, false
		}
		i = store.SkipJSONSpace(body, i+1)
	}
	if store.SkipJSONSpace(body, i) != len(body) {
		return setRequest{}, false
	}
	req, err := f.request(maxValueBytes, valueSpaced)
	return req, err == nil
}
