package kvfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const expiresAtLayout = "2006-01-02T15:04:05.000Z"

func expiresJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(expiresAtLayout)
}

func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// meta is the data of PUT and PATCH answers.
func (s *Server) meta(status int, key string, e *entry) response {
	resp := dataResp(status, map[string]any{"key": key, "version": e.version, "expiresAt": expiresJSON(e.expiresAt)})
	resp.header.Set("ETag", etag(e.version))
	resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
	return resp
}

// checkIfMatch evaluates If-Match against e (nil: missing). ok false carries
// the 412 (or 400) to send.
func checkIfMatch(r *http.Request, e *entry) (response, bool) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return response{}, true
	}
	want, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
	if err != nil {
		return errResp(http.StatusBadRequest, "invalid_precondition", "fake: If-Match must be one version", false), false
	}
	if e == nil || e.version != want {
		var cur uint64
		if e != nil {
			cur = e.version
		}
		return errRespVersion(http.StatusPreconditionFailed, "version_mismatch", "fake: version mismatch", false, true, cur), false
	}
	return response{}, true
}

func (s *Server) itemRoute(w http.ResponseWriter, r *http.Request, fault Fault, rest string) {
	escaped, op, _ := strings.Cut(rest, "/")
	key, err := url.PathUnescape(escaped)
	if err != nil || key == "" || len(key) > 512 {
		errResp(http.StatusBadRequest, "invalid_key", "fake: bad key", false).write(w)
		return
	}
	switch {
	case op == "incr" && r.Method == http.MethodPost:
		s.incr(w, r, fault, key)
	case op != "":
		errResp(http.StatusNotFound, "not_found", "fake: no such route", false).write(w)
	case r.Method == http.MethodGet:
		s.get(w, r, key)
	case r.Method == http.MethodPut:
		s.put(w, r, fault, key)
	case r.Method == http.MethodPatch:
		s.patch(w, r, fault, key)
	case r.Method == http.MethodDelete:
		s.del(w, r, fault, key)
	default:
		methodNotAllowed(w, "GET, PUT, PATCH, DELETE")
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.live(key)
	if e == nil {
		errResp(http.StatusNotFound, "not_found", "fake: no such key", false).write(w)
		return
	}
	var remaining any
	if !e.expiresAt.IsZero() {
		remaining = e.expiresAt.Sub(s.now()).Milliseconds()
	}
	resp := dataResp(http.StatusOK, map[string]any{"key": key, "value": e.value, "version": e.version,
		"expiresAt": expiresJSON(e.expiresAt), "ttlRemainingMs": remaining})
	resp.header.Set("ETag", etag(e.version))
	resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
	resp.write(w)
}

// parseTTL reads "ttlSeconds" (raw JSON; nil or null: none) into whole ms.
func parseTTL(raw json.RawMessage) (time.Duration, bool) {
	if raw == nil || string(raw) == "null" {
		return 0, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	ms := math.Round(f * 1000)
	if err != nil || ms < 1 || ms > 315_576_000_000 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// readFields reads the request's JSON object; on failure it answers the
// request itself and ok is false.
func readFields(w http.ResponseWriter, r *http.Request) (body []byte, fields map[string]json.RawMessage, ok bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		errResp(http.StatusBadRequest, "invalid_json", "fake: unreadable body", false).write(w)
		return nil, nil, false
	}
	fields = map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &fields); err != nil {
			errResp(http.StatusBadRequest, "invalid_json", "fake: the body is not a JSON object", false).write(w)
			return nil, nil, false
		}
	}
	return body, fields, true
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, fault Fault, key string) {
	body, f, ok := readFields(w, r)
	if !ok {
		return
	}
	value, ok := f["value"]
	if !ok {
		errResp(http.StatusBadRequest, "missing_value", "fake: no value", false).write(w)
		return
	}
	ttl, ok := parseTTL(f["ttlSeconds"])
	keep := string(f["keepTtl"]) == "true"
	if !ok || (keep && f["ttlSeconds"] != nil) {
		errResp(http.StatusBadRequest, "invalid_ttl", "fake: bad ttlSeconds", false).write(w)
		return
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, value) // valid: it was unmarshaled
	s.write(w, r, fault, "item\x00"+key, body, func() response {
		e := s.live(key)
		if resp, ok := checkIfMatch(r, e); !ok {
			return resp
		}
		if r.Header.Get("If-None-Match") == "*" && e != nil {
			return errRespVersion(http.StatusPreconditionFailed, "already_exists", "fake: the key exists", false, true, e.version)
		}
		s.index++
		n := &entry{value: compact.Bytes(), version: s.index}
		switch {
		case keep && e != nil:
			n.expiresAt = e.expiresAt
		case ttl > 0:
			n.expiresAt = s.now().Add(ttl).Truncate(time.Millisecond)
		}
		s.items[key] = n
		status := http.StatusOK
		if e == nil {
			status = http.StatusCreated
		}
		return s.meta(status, key, n)
	})
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, fault Fault, key string) {
	body, f, ok := readFields(w, r)
	if !ok {
		return
	}
	raw, present := f["ttlSeconds"]
	ttl, ok := parseTTL(raw)
	if !present || !ok {
		errResp(http.StatusBadRequest, "invalid_ttl", "fake: bad ttlSeconds", false).write(w)
		return
	}
	s.write(w, r, fault, "item\x00"+key, body, func() response {
		e := s.live(key)
		if resp, ok := checkIfMatch(r, e); !ok {
			return resp
		}
		if e == nil {
			return errResp(http.StatusNotFound, "not_found", "fake: no such key", false)
		}
		s.index++
		e.version = s.index
		e.expiresAt = time.Time{}
		if ttl > 0 {
			e.expiresAt = s.now().Add(ttl).Truncate(time.Millisecond)
		}
		return s.meta(http.StatusOK, key, e)
	})
}

func (s *Server) del(w http.ResponseWriter, r *http.Request, fault Fault, key string) {
	s.write(w, r, fault, "item\x00"+key, nil, func() response {
		e := s.live(key)
		if resp, ok := checkIfMatch(r, e); !ok {
			return resp
		}
		s.index++
		delete(s.items, key)
		resp := dataResp(http.StatusOK, map[string]any{"key": key, "deleted": e != nil})
		resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
		return resp
	})
}

var integerText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func (s *Server) incr(w http.ResponseWriter, r *http.Request, fault Fault, key string) {
	body, f, ok := readFields(w, r)
	if !ok {
		return
	}
	by := int64(1)
	if raw, ok := f["by"]; ok {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			errResp(http.StatusBadRequest, "invalid_json", "fake: by must be an int64", false).write(w)
			return
		}
		by = n
	}
	ttl, ok := parseTTL(f["ttlSeconds"])
	if !ok {
		errResp(http.StatusBadRequest, "invalid_ttl", "fake: bad ttlSeconds", false).write(w)
		return
	}
	s.write(w, r, fault, "incr\x00"+key, body, func() response {
		e := s.live(key)
		if resp, ok := checkIfMatch(r, e); !ok {
			return resp
		}
		var cur int64
		var expires time.Time
		if e != nil {
			n, err := strconv.ParseInt(string(e.value), 10, 64)
			if !integerText.Match(e.value) || err != nil {
				return errResp(http.StatusConflict, "not_an_integer", "fake: not an integer", false)
			}
			cur, expires = n, e.expiresAt
		} else if ttl > 0 {
			expires = s.now().Add(ttl).Truncate(time.Millisecond)
		}
		if (by > 0 && cur > math.MaxInt64-by) || (by < 0 && cur < math.MinInt64-by) {
			return errResp(http.StatusConflict, "overflow", "fake: overflow", false)
		}
		s.index++
		n := &entry{value: json.RawMessage(strconv.FormatInt(cur+by, 10)), version: s.index, expiresAt: expires}
		s.items[key] = n
		resp := dataResp(http.StatusOK, map[string]any{"key": key, "value": cur + by, "version": n.version, "expiresAt": expiresJSON(expires)})
		resp.header.Set("ETag", etag(n.version))
		resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
		return resp
	})
}

func (s *Server) itemsRoute(w http.ResponseWriter, r *http.Request, fault Fault) {
	prefix := r.URL.Query().Get("prefix")
	switch r.Method {
	case http.MethodGet:
		s.list(w, r, prefix)
	case http.MethodDelete:
		if prefix == "" {
			errResp(http.StatusBadRequest, "invalid_parameter", "fake: prefix required", false).write(w)
			return
		}
		s.write(w, r, fault, "prefix\x00"+prefix, nil, func() response {
			n := 0
			for k := range s.items {
				if strings.HasPrefix(k, prefix) {
					if s.live(k) != nil {
						n++
					}
					delete(s.items, k)
				}
			}
			s.index++
			resp := dataResp(http.StatusOK, map[string]any{"deleted": n})
			resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
			return resp
		})
	default:
		methodNotAllowed(w, "GET, DELETE")
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, prefix string) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			errResp(http.StatusBadRequest, "invalid_parameter", "fake: limit is 1-1000", false).write(w)
			return
		}
		limit = n
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) < 2 || b[0] != 'k' {
			errResp(http.StatusBadRequest, "invalid_parameter", "fake: bad cursor", false).write(w)
			return
		}
		after = string(b[1:])
	}
	values := q.Get("values") == "true"

	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.items {
		if strings.HasPrefix(k, prefix) && k > after && s.live(k) != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	items := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		e := s.items[k]
		it := map[string]any{"key": k, "version": e.version, "expiresAt": expiresJSON(e.expiresAt)}
		if values {
			it["value"] = e.value
		}
		items = append(items, it)
	}
	var cursor any
	if more {
		cursor = base64.RawURLEncoding.EncodeToString(append([]byte{'k'}, keys[len(keys)-1]...))
	}
	resp := dataResp(http.StatusOK, map[string]any{"items": items, "cursor": cursor, "complete": !more})
	resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
	resp.write(w)
}
