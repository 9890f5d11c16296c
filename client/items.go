package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Item is a stored key with its value and metadata.
type Item struct {
	Key string
	// Value is the stored JSON, byte for byte as the server returned it.
	// nil in List results without values.
	Value json.RawMessage
	// Version is the raft log index of the write that last changed the key;
	// IfMatch takes it.
	Version uint64
	// ExpiresAt is the absolute expiry; the zero Time means none.
	ExpiresAt time.Time
	// TTLRemaining is the time left before ExpiresAt on the serving node's
	// clock when it answered (Get only; 0 when there is no expiry).
	TTLRemaining time.Duration
	// Index is the serving node's applied index (X-KV-Index): the read
	// reflects every write up to it. Get and ListPage only.
	Index uint64
}

// Decode unmarshals the item's value into v.
func (it Item) Decode(v any) error { return json.Unmarshal(it.Value, v) }

// WriteResult is the outcome of Put and Patch.
type WriteResult struct {
	Key     string
	Version uint64
	// ExpiresAt is the key's expiry after the write; zero means none.
	ExpiresAt time.Time
	// Created is true when Put created the key (201), false when it replaced
	// a live one (and always false for Patch).
	Created bool
	// Index is the write's log index (X-KV-Index), for MinIndex reads.
	Index uint64
}

// IncrResult is the outcome of Incr.
type IncrResult struct {
	Key       string
	Value     int64
	Version   uint64
	ExpiresAt time.Time
	Index     uint64
}

// itemData is the wire form of GET, PUT, PATCH and incr answers.
type itemData struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	Version        uint64          `json:"version"`
	ExpiresAt      *time.Time      `json:"expiresAt"`
	TTLRemainingMs *int64          `json:"ttlRemainingMs"`
}

func (d itemData) item() Item {
	it := Item{Key: d.Key, Value: d.Value, Version: d.Version}
	if d.ExpiresAt != nil {
		it.ExpiresAt = *d.ExpiresAt
	}
	if d.TTLRemainingMs != nil {
		it.TTLRemaining = time.Duration(*d.TTLRemainingMs) * time.Millisecond
	}
	return it
}

// decodeData unmarshals the "data" member of a success envelope into v.
func decodeData(res *result, v any) error {
	env := struct {
		Data json.RawMessage `json:"data"`
	}{}
	if err := json.Unmarshal(res.body, &env); err != nil || len(env.Data) == 0 {
		return &APIError{Status: res.status, Endpoint: res.endpoint, Code: "invalid_response",
			Message: "the response is not the API's {\"data\": ...} document", Err: err}
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return &APIError{Status: res.status, Endpoint: res.endpoint, Code: "invalid_response",
			Message: "the response data does not have the expected shape: " + err.Error(), Err: err}
	}
	return nil
}

func itemPath(key string) string { return "/kv/items/" + url.PathEscape(key) }

// readQuery renders the read-level options.
func readQuery(o options) url.Values {
	q := url.Values{}
	if o.has(optStale) {
		q.Set("consistency", "stale")
	}
	if o.has(optMinIndex) {
		q.Set("minIndex", strconv.FormatUint(o.minIndex, 10))
	}
	return q
}

// writeHeader renders the preconditions and the idempotency key of a write:
// the caller's key if given, else a fresh one, reused by every attempt.
func writeHeader(o options) http.Header {
	h := http.Header{}
	if o.has(optIfMatch) {
		h.Set("If-Match", `"`+strconv.FormatUint(o.ifMatch, 10)+`"`)
	}
	if o.has(optIfNoneMatch) {
		h.Set("If-None-Match", "*")
	}
	k := o.idempotencyKey
	if k == "" {
		k = newIdempotencyKey()
	}
	h.Set("Idempotency-Key", k)
	return h
}

func checkKey(method, key string) error {
	if key == "" {
		return fmt.Errorf("client: %s: the key is empty: %w", method, ErrInvalidOption)
	}
	return nil
}

// Get reads key. A missing or expired key is ErrNotFound. Options: Stale,
// MinIndex.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) (Item, error) {
	o, err := collect("Get", optStale|optMinIndex, opts)
	if err != nil {
		return Item{}, err
	}
	if err := checkKey("Get", key); err != nil {
		return Item{}, err
	}
	res, err := c.do(ctx, &call{method: http.MethodGet, path: itemPath(key), query: readQuery(o), replayable: true, read: true})
	if err != nil {
		return Item{}, err
	}
	var d itemData
	if err := decodeData(res, &d); err != nil {
		return Item{}, err
	}
	it := d.item()
	it.Index = indexOf(res.header)
	return it, nil
}

// encodeValue renders value as JSON: a json.RawMessage is sent as is (it
// must be valid JSON), anything else through encoding/json without HTML
// escaping.
func encodeValue(value any) ([]byte, error) {
	if raw, ok := value.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("client: the value is not valid JSON: %w", ErrInvalidOption)
		}
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return nil, fmt.Errorf("client: encoding the value: %w: %w", ErrInvalidOption, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Put stores value at key: a json.RawMessage is sent verbatim, anything else
// is encoded with encoding/json. Options: TTL, KeepTTL, IfMatch, IfNoneMatch
// (create only), IdempotencyKey. Without TTL or KeepTTL the key never
// expires.
func (c *Client) Put(ctx context.Context, key string, value any, opts ...Option) (WriteResult, error) {
	o, err := collect("Put", optTTL|optKeepTTL|optIfMatch|optIfNoneMatch|optIdempotencyKey, opts)
	if err != nil {
		return WriteResult{}, err
	}
	if err := checkKey("Put", key); err != nil {
		return WriteResult{}, err
	}
	v, err := encodeValue(value)
	if err != nil {
		return WriteResult{}, err
	}
	body := append([]byte(`{"value":`), v...)
	if o.has(optTTL) {
		s, _ := ttlSeconds(o.ttl) // checked by collect
		body = append(append(body, `,"ttlSeconds":`...), s...)
	}
	if o.has(optKeepTTL) {
		body = append(body, `,"keepTtl":true`...)
	}
	body = append(body, '}')
	return c.write(ctx, &call{method: http.MethodPut, path: itemPath(key), header: writeHeader(o), body: body, replayable: true})
}

// Patch sets the expiry of the live key to ttl from now, without resending
// its value (sliding sessions); ttl 0 removes the expiry. A missing or
// expired key is ErrNotFound. Options: IfMatch, IdempotencyKey.
func (c *Client) Patch(ctx context.Context, key string, ttl time.Duration, opts ...Option) (WriteResult, error) {
	o, err := collect("Patch", optIfMatch|optIdempotencyKey, opts)
	if err != nil {
		return WriteResult{}, err
	}
	if err := checkKey("Patch", key); err != nil {
		return WriteResult{}, err
	}
	body := []byte(`{"ttlSeconds":null}`)
	if ttl != 0 {
		s, err := ttlSeconds(ttl)
		if err != nil {
			return WriteResult{}, fmt.Errorf("client: Patch: %w", err)
		}
		body = []byte(`{"ttlSeconds":` + s + `}`)
	}
	return c.write(ctx, &call{method: http.MethodPatch, path: itemPath(key), header: writeHeader(o), body: body, replayable: true})
}

func (c *Client) write(ctx context.Context, cl *call) (WriteResult, error) {
	res, err := c.do(ctx, cl)
	if err != nil {
		return WriteResult{}, err
	}
	var d itemData
	if err := decodeData(res, &d); err != nil {
		return WriteResult{}, err
	}
	w := WriteResult{Key: d.Key, Version: d.Version, Created: res.status == http.StatusCreated, Index: indexOf(res.header)}
	if d.ExpiresAt != nil {
		w.ExpiresAt = *d.ExpiresAt
	}
	return w, nil
}

// Delete removes key and reports whether a live key was deleted; deleting a
// missing key is not an error, unless IfMatch is given (then it is
// ErrVersionMismatch). Options: IfMatch, IdempotencyKey.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) (deleted bool, err error) {
	o, err := collect("Delete", optIfMatch|optIdempotencyKey, opts)
	if err != nil {
		return false, err
	}
	if err := checkKey("Delete", key); err != nil {
		return false, err
	}
	res, err := c.do(ctx, &call{method: http.MethodDelete, path: itemPath(key), header: writeHeader(o), replayable: true})
	if err != nil {
		return false, err
	}
	var d struct {
		Deleted bool `json:"deleted"`
	}
	if err := decodeData(res, &d); err != nil {
		return false, err
	}
	return d.Deleted, nil
}

// Incr adds by to the integer at key (a missing key starts at 0) and returns
// the new value. A value that is not a 64-bit JSON integer is
// ErrNotAnInteger; leaving the int64 range is ErrOverflow. Options: TTL
// (applied only when the counter is created), IfMatch, IdempotencyKey.
func (c *Client) Incr(ctx context.Context, key string, by int64, opts ...Option) (IncrResult, error) {
	o, err := collect("Incr", optTTL|optIfMatch|optIdempotencyKey, opts)
	if err != nil {
		return IncrResult{}, err
	}
	if err := checkKey("Incr", key); err != nil {
		return IncrResult{}, err
	}
	body := []byte(`{"by":` + strconv.FormatInt(by, 10))
	if o.has(optTTL) {
		s, _ := ttlSeconds(o.ttl)
		body = append(append(body, `,"ttlSeconds":`...), s...)
	}
	body = append(body, '}')
	res, err := c.do(ctx, &call{method: http.MethodPost, path: itemPath(key) + "/incr", header: writeHeader(o), body: body, replayable: true})
	if err != nil {
		return IncrResult{}, err
	}
	var d struct {
		Key       string     `json:"key"`
		Value     int64      `json:"value"`
		Version   uint64     `json:"version"`
		ExpiresAt *time.Time `json:"expiresAt"`
	}
	if err := decodeData(res, &d); err != nil {
		return IncrResult{}, err
	}
	r := IncrResult{Key: d.Key, Value: d.Value, Version: d.Version, Index: indexOf(res.header)}
	if d.ExpiresAt != nil {
		r.ExpiresAt = *d.ExpiresAt
	}
	return r, nil
}

// DeletePrefix deletes every key starting with prefix (non-empty) that was
// written before the call, and returns how many live keys it deleted. The
// server deletes in chunks of bounded size, so readers may see the prefix
// partly deleted meanwhile (README, "Bulk delete"). Options: IdempotencyKey,
// with which a retry finishes the original and returns its count.
func (c *Client) DeletePrefix(ctx context.Context, prefix string, opts ...Option) (int, error) {
	o, err := collect("DeletePrefix", optIdempotencyKey, opts)
	if err != nil {
		return 0, err
	}
	if prefix == "" {
		return 0, fmt.Errorf("client: DeletePrefix: the prefix is empty (deleting every key is not supported): %w", ErrInvalidOption)
	}
	res, err := c.do(ctx, &call{method: http.MethodDelete, path: "/kv/items", query: url.Values{"prefix": {prefix}},
		header: writeHeader(o), replayable: true})
	if err != nil {
		return 0, err
	}
	var d struct {
		Deleted int `json:"deleted"`
	}
	if err := decodeData(res, &d); err != nil {
		return 0, err
	}
	return d.Deleted, nil
}
