package kvfake

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// txn serves POST /kv/txn like the real server: every check against the
// current state, then every operation validated, then all applied at one
// index; 412 txn_check_failed or 409 txn_op_failed write nothing. A
// transaction without writes is a read and takes no index.
func (s *Server) txn(w http.ResponseWriter, r *http.Request, fault Fault) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	var t struct {
		Checks []struct {
			Key     string          `json:"key"`
			Version *uint64         `json:"version"`
			Exists  *bool           `json:"exists"`
			Value   json.RawMessage `json:"value"`
		} `json:"checks"`
		Ops []struct {
			Op         string          `json:"op"`
			Key        string          `json:"key"`
			Value      json.RawMessage `json:"value"`
			TTLSeconds json.RawMessage `json:"ttlSeconds"`
			KeepTTL    bool            `json:"keepTtl"`
			By         *int64          `json:"by"`
		} `json:"ops"`
	}
	if err != nil || json.Unmarshal(body, &t) != nil || len(t.Ops) == 0 {
		errResp(http.StatusBadRequest, "invalid_json", "fake: the transaction body is not valid", false).write(w)
		return
	}
	seen := map[string]bool{}
	for _, op := range t.Ops {
		if seen[op.Key] || op.Key == "" {
			errResp(http.StatusBadRequest, "invalid_parameter", "fake: each key at most once among the operations", false).write(w)
			return
		}
		seen[op.Key] = true
	}
	s.write(w, r, fault, "txn", body, func() response {
		var failed []map[string]any
		for i, c := range t.Checks {
			e := s.live(c.Key)
			var cur uint64
			if e != nil {
				cur = e.version
			}
			holds := true
			switch {
			case c.Version != nil:
				holds = cur == *c.Version
			case c.Exists != nil:
				holds = (e != nil) == *c.Exists
			default:
				holds = e != nil && string(e.value) == string(compact(c.Value))
			}
			if !holds {
				f := map[string]any{"position": i, "key": c.Key, "currentVersion": nil}
				if cur != 0 {
					f["currentVersion"] = cur
				}
				failed = append(failed, f)
			}
		}
		if failed != nil {
			return errRespExtra(http.StatusPreconditionFailed, "txn_check_failed", "fake: a check did not hold", "failedChecks", failed)
		}
		writes := false
		for i, op := range t.Ops {
			e := s.live(op.Key)
			reason := ""
			switch op.Op {
			case "get", "put", "delete":
			case "patch":
				if e == nil {
					reason = "not_found"
				}
			case "incr":
				if e != nil {
					n, err := strconv.ParseInt(string(e.value), 10, 64)
					by := int64(1)
					if op.By != nil {
						by = *op.By
					}
					switch {
					case err != nil || !integerText.Match(e.value):
						reason = "not_an_integer"
					case (by > 0 && n > math.MaxInt64-by) || (by < 0 && n < math.MinInt64-by):
						reason = "overflow"
					}
				}
			default:
				return errResp(http.StatusBadRequest, "invalid_json", "fake: unknown op "+op.Op, false)
			}
			if reason != "" {
				return errRespExtra(http.StatusConflict, "txn_op_failed", "fake: an operation cannot apply", "failedOp",
					map[string]any{"position": i, "op": op.Op, "key": op.Key, "reason": reason, "currentVersion": nil})
			}
			writes = writes || op.Op != "get"
		}
		if writes {
			s.index++
		}
		results := make([]map[string]any, len(t.Ops))
		for i, op := range t.Ops {
			e := s.live(op.Key)
			ttl, _ := parseTTL(op.TTLSeconds)
			var exp time.Time
			if ttl > 0 {
				exp = s.now().Add(ttl).Truncate(time.Millisecond)
			}
			res := map[string]any{"op": op.Op, "key": op.Key}
			switch op.Op {
			case "get":
				res["found"], res["value"], res["version"], res["expiresAt"] = e != nil, nil, 0, nil
				if e != nil {
					res["value"], res["version"], res["expiresAt"] = e.value, e.version, expiresJSON(e.expiresAt)
				}
			case "put":
				if op.KeepTTL {
					exp = time.Time{}
					if e != nil {
						exp = e.expiresAt
					}
				}
				s.items[op.Key] = &entry{value: compact(op.Value), version: s.index, expiresAt: exp}
				res["version"], res["expiresAt"] = s.index, expiresJSON(exp)
			case "delete":
				delete(s.items, op.Key)
				res["deleted"] = e != nil
			case "patch":
				s.items[op.Key] = &entry{value: e.value, version: s.index, expiresAt: exp}
				res["version"], res["expiresAt"] = s.index, expiresJSON(exp)
			case "incr":
				by, n := int64(1), int64(0)
				if op.By != nil {
					by = *op.By
				}
				if e != nil {
					n, _ = strconv.ParseInt(string(e.value), 10, 64)
					exp = e.expiresAt
				}
				s.items[op.Key] = &entry{value: json.RawMessage(strconv.FormatInt(n+by, 10)), version: s.index, expiresAt: exp}
				res["value"], res["version"], res["expiresAt"] = n+by, s.index, expiresJSON(exp)
			}
			results[i] = res
		}
		resp := dataResp(http.StatusOK, map[string]any{"index": s.index, "results": results})
		resp.header.Set("X-KV-Index", strconv.FormatUint(s.index, 10))
		return resp
	})
}

func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// errRespExtra is an error answer with one more field in its error body.
func errRespExtra(status int, code, msg, field string, extra any) response {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "retryable": false, field: extra}})
	return response{status: status, header: http.Header{}, body: append(b, '\n')}
}
