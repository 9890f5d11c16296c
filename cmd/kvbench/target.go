package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// op is one kind of request a workload sends.
type op int

const (
	opGet op = iota
	opPut
	opIncr
	opTxn
	numOps
)

func (o op) String() string {
	return [...]string{"get", "put", "incr", "txn"}[o]
}

// outcome classifies one answered (or failed) request.
type outcome struct {
	// miss: the request succeeded and found no key (kv 404 on GET, an empty
	// etcd range). Whether a miss is an error is the workload's decision.
	miss bool
	// errKey is empty on success, else a short stable label for the error
	// table: "<status> <code>" or "transport: <kind>".
	errKey string
}

// target speaks one server's API. Its methods run concurrently on every
// worker's goroutine; they use only the worker's buffers.
type target interface {
	// newRequest builds the request for o on key. body is the worker's
	// scratch buffer, reset by the caller, which the request may read from
	// until it is answered.
	newRequest(base string, o op, key string, keyIndex int, body *bytes.Buffer) (*http.Request, error)
	// classify judges an answer from its status and complete body.
	classify(o op, status int, body []byte) outcome
}

func newTarget(c config) target {
	if c.target == "etcd" {
		return &etcdTarget{serializable: c.consistency == "stale", valueSize: c.valueSize}
	}
	t := &kvTarget{auth: "Bearer " + c.apiKey, valueSize: c.valueSize, counter: c.workload == "counter", txnOps: c.txnOps}
	if c.consistency != "" {
		t.query = "?consistency=" + c.consistency
	}
	if c.ttlSeconds > 0 {
		t.ttl = strconv.FormatFloat(c.ttlSeconds, 'f', -1, 64)
	}
	t.incrBody = []byte(`{"by":` + strconv.FormatInt(c.incrBy, 10))
	if t.ttl != "" {
		t.incrBody = append(t.incrBody, `,"ttlSeconds":`+t.ttl...)
	}
	t.incrBody = append(t.incrBody, '}')
	return t
}

// appendValue appends a JSON object of exactly size bytes (or the smallest
// such object, when size is smaller) that differs per key index.
func appendValue(b []byte, keyIndex, size int) []byte {
	start := len(b)
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, int64(keyIndex), 10)
	b = append(b, `,"pad":"`...)
	for len(b)-start < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// kvTarget speaks quorumkv's HTTP API (items and, for incr, counters).
type kvTarget struct {
	auth      string
	query     string // appended to GET URLs
	ttl       string // ttlSeconds as JSON, empty for none
	valueSize int
	counter   bool // values are integers (the counter workload's preload)
	incrBody  []byte
	txnOps    int // puts per transaction
}

func (t *kvTarget) newRequest(base string, o op, key string, keyIndex int, body *bytes.Buffer) (*http.Request, error) {
	u := base + "/kv/items/" + url.PathEscape(key)
	var req *http.Request
	var err error
	switch o {
	case opGet:
		req, err = http.NewRequest(http.MethodGet, u+t.query, nil)
	case opPut:
		b := body.AvailableBuffer()
		b = append(b, `{"value":`...)
		if t.counter {
			b = append(b, '0')
		} else {
			b = appendValue(b, keyIndex, t.valueSize)
		}
		if t.ttl != "" {
			b = append(b, `,"ttlSeconds":`...)
			b = append(b, t.ttl...)
		}
		b = append(b, '}')
		body.Write(b)
		req, err = http.NewRequest(http.MethodPut, u, body)
	case opIncr:
		body.Write(t.incrBody)
		req, err = http.NewRequest(http.MethodPost, u+"/incr", body)
	case opTxn:
		// txnOps puts of this key's sub-keys, each like the write
		// workload's PUT, in one transaction.
		b := append(body.AvailableBuffer(), `{"ops":[`...)
		for i := range t.txnOps {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"op":"put","key":`...)
			b = strconv.AppendQuote(b, key+"/"+strconv.Itoa(i))
			b = append(b, `,"value":`...)
			b = appendValue(b, keyIndex, t.valueSize)
			if t.ttl != "" {
				b = append(b, `,"ttlSeconds":`...)
				b = append(b, t.ttl...)
			}
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		body.Write(b)
		req, err = http.NewRequest(http.MethodPost, base+"/kv/txn", body)
	default:
		return nil, fmt.Errorf("kv target: no request for %v", o)
	}
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{t.auth}
	if o != opGet {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	return req, nil
}

func (t *kvTarget) classify(o op, status int, body []byte) outcome {
	switch {
	case status >= 200 && status <= 299:
		return outcome{}
	case status == http.StatusNotFound && o == opGet:
		return outcome{miss: true}
	}
	return outcome{errKey: statusKey(status, kvErrorCode(body))}
}

// kvErrorCode extracts error.code from quorumkv's error envelope, or "".
func kvErrorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func statusKey(status int, code string) string {
	if code == "" {
		code = "(no error code)"
	}
	return strconv.Itoa(status) + " " + code
}

// etcdTarget speaks etcd's v3 JSON gateway: POST /v3/kv/put and
// /v3/kv/range with base64 keys and values. It has no TTL (etcd needs a
// lease per expiry) and no incr.
type etcdTarget struct {
	serializable bool
	valueSize    int
}

func (t *etcdTarget) newRequest(base string, o op, key string, keyIndex int, body *bytes.Buffer) (*http.Request, error) {
	b := body.AvailableBuffer()
	b = append(b, `{"key":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(key))
	var path string
	switch o {
	case opGet:
		path = "/v3/kv/range"
		b = append(b, '"')
		if t.serializable {
			b = append(b, `,"serializable":true`...)
		}
	case opPut:
		path = "/v3/kv/put"
		b = append(b, `","value":"`...)
		var scratch [256]byte
		b = base64.StdEncoding.AppendEncode(b, appendValue(scratch[:0], keyIndex, t.valueSize))
		b = append(b, '"')
	default:
		return nil, fmt.Errorf("etcd target: no request for %v", o)
	}
	b = append(b, '}')
	body.Write(b)
	req, err := http.NewRequest(http.MethodPost, base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

func (t *etcdTarget) classify(o op, status int, body []byte) outcome {
	if status < 200 || status > 299 {
		var e struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		code := ""
		if json.Unmarshal(body, &e) == nil && e.Code != nil {
			code = "grpc=" + strconv.Itoa(*e.Code)
		}
		return outcome{errKey: statusKey(status, code)}
	}
	// A range that found nothing has no "kvs" field (and "count" omitted).
	if o == opGet && !bytes.Contains(body, []byte(`"kvs"`)) {
		return outcome{miss: true}
	}
	return outcome{}
}
