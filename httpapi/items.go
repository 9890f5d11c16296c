package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

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
	return parseKey(mux.Vars(r)["key"])
}

// getItem serves GET /kv/items/{key}: a linearizable read. The stored value
// is written into the response verbatim, never decoded and re-encoded.
func (a *api) getItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	// Reads are always linearizable for now; a "level" query parameter selecting
	// store.Stale is planned.
	item, err := a.st.Get(r.Context(), key, store.Linearizable)
	if err != nil {
		return reply{}, err
	}
	if len(item.Value) == 0 {
		// Store promises compact JSON; an empty value would make the response invalid JSON.
		return reply{}, fmt.Errorf("httpapi: store returned an empty value for key %q", key)
	}
	b := make([]byte, 0, len(item.Value)+len(key)+96)
	b = append(b, `{"data":{"key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"value":`...)
	b = append(b, item.Value...)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, item.Version, 10)
	b = append(b, `,"expiresAt":`...)
	b = appendExpiry(b, item.ExpiresAt)
	b = append(b, "}}\n"...)
	return reply{status: http.StatusOK, body: b}, nil
}

// putItem serves PUT /kv/items/{key}: 201 when the key was created, 200 when
// an existing live key was replaced.
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
	res, err := a.st.Set(r.Context(), key, req.value, req.ttl)
	if err != nil {
		return reply{}, err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return dataReply(status, itemMeta{Key: key, Version: res.Version, ExpiresAt: expiry(res.ExpiresAt)})
}

// deleteItem serves DELETE /kv/items/{key}. Deleting a missing key succeeds
// with "deleted": false.
func (a *api) deleteItem(r *http.Request) (reply, error) {
	key, err := itemKey(r)
	if err != nil {
		return reply{}, err
	}
	res, err := a.st.Delete(r.Context(), key)
	if err != nil {
		return reply{}, err
	}
	return dataReply(http.StatusOK, struct {
		Key     string `json:"key"`
		Deleted bool   `json:"deleted"`
	}{key, res.Deleted})
}

// emptyKey serves /kv/items/ (no key segment), which is a client error, not a missing route.
func (a *api) emptyKey(*http.Request) (reply, error) {
	return reply{}, errInvalidKey("The key is empty; use /kv/items/{key} with a key of 1 to 512 bytes.")
}
