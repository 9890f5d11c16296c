package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/quorumkv/quorumkv/store"
)

// itemMeta is the data of a PUT response.
type itemMeta struct {
	Key       string `json:"key"`
	Version   uint64 `json:"version"`
	ExpiresAt expiry `json:"expiresAt"`
}

// itemKey returns the validated key of a /kv/items/{key} request. The router
// matches the escaped path, so the variable is still percent-encoded.
func itemKey(r *http.Request) (string, error) {
	if k := r.PathValue("key"); k != "" { // set by router's fast path
		return parseKey(k)
	}
	return parseKey(mux.Vars(r)["key"])
}

// getItem serves GET /kv/items/{key}: a linearizable read by default, stale on
// request. The stored value is written into the response verbatim, never
// decoded and re-encoded.
func (a *api) getItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	index, wait, blocking, err := a.parseWait(r)
	if err != nil {
		return reply{}, err
	}
	if blocking {
		return a.blockingRead(r, key, index, wait, a.readItem)
	}
	return a.readItem(r)
}

// readItem is GET /kv/items/{key} without a wait.
func (a *api) readItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	opts, err := readOptions(r)
	if err != nil {
		return reply{}, err
	}
	item, info, err := a.st.Read(r.Context(), key, opts)
	if errors.Is(err, store.ErrNotFound) && info.AppliedIndex != 0 {
		// A 404 says which state it was read from too (a near cache needs
		// to know where an absent key's absence was observed).
		e, _ := resolveError(err)
		withIndex := *e
		withIndex.index = info.AppliedIndex
		return reply{}, &withIndex
	}
	if err != nil {
		return reply{}, err
	}
	if len(item.Value) == 0 {
		// Store promises compact JSON; an empty value would make the response invalid JSON.
		return reply{}, fmt.Errorf("httpapi: store returned an empty value for key %q", key)
	}
	b := make([]byte, 0, len(item.Value)+len(key)+128)
	b = append(b, `{"data":{"key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"value":`...)
	b = append(b, item.Value...)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, item.Version, 10)
	b = append(b, `,"expiresAt":`...)
	b = appendExpiry(b, item.ExpiresAt)
	b = append(b, `,"ttlRemainingMs":`...)
	if item.ExpiresAt.IsZero() {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, ttlRemainingMs(item.ExpiresAt, a.cfg.Clock()), 10)
	}
	b = append(b, "}}\n"...)
	h := readHeaders(http.Header{}, info)
	h.Set("ETag", etag(item.Version))
	return reply{status: http.StatusOK, body: b, header: h}, nil
}

// putItem serves PUT /kv/items/{key}: 201 when the key was created, 200 when
// an existing live key was replaced. If-Match, If-None-Match: * and
// Idempotency-Key are honoured inside the state machine.
func (a *api) putItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	req, err := parseSetBody(body, a.cfg.MaxValueBytes)
	if err != nil {
		return reply{}, err
	}
	opts, err := writeOptions(r, true, "item\x00"+key, body)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.Put(r.Context(), key, req.value, req.ttl, req.keepTTL, opts)
	if err != nil {
		return reply{}, err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return metaReply(status, key, res)
}

// metaReply answers a PUT or PATCH: key, new version and expiry, with ETag and
// X-KV-Index.
// The body is built by hand (it is on every write's path); it equals
// dataReply(status, itemMeta{...}) byte for byte (TestMetaReplyMatchesEncoder).
func metaReply(status int, key string, res store.SetResult) (reply, error) {
	b := make([]byte, 0, len(key)+96)
	b = append(b, `{"data":{"key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, res.Version, 10)
	b = append(b, `,"expiresAt":`...)
	b = appendExpiry(b, res.ExpiresAt)
	b = append(b, "}}\n"...)
	return reply{status: status, body: b, header: writeHeaders(res.Version, res.Index)}, nil
}

// patchItem serves PATCH /kv/items/{key} {"ttlSeconds": N|null}: refresh or
// remove the expiry of a live key without resending its value.
func (a *api) patchItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	fields, err := parseObject(body, false, "ttlSeconds")
	if err != nil {
		return reply{}, err
	}
	raw, ok := fields["ttlSeconds"]
	if !ok {
		return reply{}, errInvalidTTL(`The request body has no "ttlSeconds"; send {"ttlSeconds": N} to refresh the expiry or {"ttlSeconds": null} to remove it.`)
	}
	ttl, err := parseTTL(raw)
	if err != nil {
		return reply{}, err
	}
	opts, err := writeOptions(r, false, "item\x00"+key, body)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.Touch(r.Context(), key, ttl, opts)
	if err != nil {
		return reply{}, err
	}
	return metaReply(http.StatusOK, key, res)
}

// incrItem serves POST /kv/items/{key}/incr {"by": N, "ttlSeconds": T}.
func (a *api) incrItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	fields, err := parseObject(body, true, "by", "ttlSeconds")
	if err != nil {
		return reply{}, err
	}
	by := int64(1)
	if raw, ok := fields["by"]; ok {
		if by, err = parseInt64Field("by", raw); err != nil {
			return reply{}, err
		}
	}
	var ttl time.Duration
	if raw, ok := fields["ttlSeconds"]; ok {
		if ttl, err = parseTTL(raw); err != nil {
			return reply{}, err
		}
	}
	opts, err := writeOptions(r, false, "incr\x00"+key, body)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.Incr(r.Context(), key, by, ttl, opts)
	if err != nil {
		return reply{}, err
	}
	rep, err := dataReply(http.StatusOK, struct {
		Key       string `json:"key"`
		Value     int64  `json:"value"`
		Version   uint64 `json:"version"`
		ExpiresAt expiry `json:"expiresAt"`
	}{key, res.Value, res.Version, expiry(res.ExpiresAt)})
	rep.header = writeHeaders(res.Version, res.Index)
	return rep, err
}

// deleteItem serves DELETE /kv/items/{key}. Deleting a missing key succeeds
// with "deleted": false, unless If-Match is sent (then it is a 412).
func (a *api) deleteItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	opts, err := writeOptions(r, false, "item\x00"+key, nil)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.DeleteIf(r.Context(), key, opts)
	if err != nil {
		return reply{}, err
	}
	rep, err := dataReply(http.StatusOK, struct {
		Key     string `json:"key"`
		Deleted bool   `json:"deleted"`
	}{key, res.Deleted})
	rep.header = writeHeaders(0, res.Index)
	return rep, err
}

// emptyKey serves /kv/items/ (no key segment), which is a client error, not a missing route.
func (a *api) emptyKey(*http.Request) (reply, error) {
	return reply{}, errInvalidKey("The key is empty; use /kv/items/{key} with a key of 1 to 512 bytes.")
}
