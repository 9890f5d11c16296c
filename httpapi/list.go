package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/quorumkv/quorumkv/store"
)

// List page sizes.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// cursorTag versions the cursor's contents, so its meaning can change later
// without misreading cursors handed out earlier.
const cursorTag = 'k'

// encodeCursor makes the opaque cursor naming lastKey: base64url (no padding)
// of a tag byte and the key.
func encodeCursor(lastKey string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorTag}, lastKey...))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != cursorTag || len(b)-1 > maxKeyBytes {
		return "", errInvalidParameter("cursor is not a cursor returned by this API; send back the \"cursor\" of the previous page unchanged, or omit it to start over.")
	}
	return string(b[1:]), nil
}

// parsePrefix validates the prefix query parameter (already percent-decoded
// by the URL parser) with the key rules, except that it may be empty.
func parsePrefix(r *http.Request) (string, error) {
	q := r.URL.Query()
	if len(q["prefix"]) > 1 {
		return "", errInvalidParameter("prefix may be sent once.")
	}
	p := q.Get("prefix")
	if err := store.CheckPrefix(p); err != nil {
		return "", errInvalidParameter(sentence(err) + " A prefix is valid UTF-8 of at most 512 bytes without control characters.")
	}
	return p, nil
}

// listItems serves GET /kv/items?prefix=&limit=&cursor=&values=: one page of
// live keys in byte order, linearizable unless consistency=stale.
func (a *api) listItems(r *http.Request) (reply, error) {
	prefix, err := parsePrefix(r)
	if err != nil {
		return reply{}, err
	}
	q := r.URL.Query()
	req := store.ListRequest{Prefix: prefix, Limit: defaultListLimit}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxListLimit || len(v) > 1 {
			return reply{}, errInvalidParameter("limit must be an integer from 1 to 1000 (default 100).")
		}
		req.Limit = n
	}
	if v, ok := q["cursor"]; ok && v[0] != "" {
		if req.After, err = decodeCursor(v[0]); err != nil {
			return reply{}, err
		}
	}
	values := false
	switch q.Get("values") {
	case "", "false":
	case "true":
		values = true
	default:
		return reply{}, errInvalidParameter("values must be true or false.")
	}
	if req.ReadOptions, err = readOptions(r); err != nil {
		return reply{}, err
	}
	res, info, err := a.st.List(r.Context(), req)
	if err != nil {
		return reply{}, err
	}

	size := 64
	for _, it := range res.Items {
		size += len(it.Key) + 64
		if values {
			size += len(it.Value) + 9
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"data":{"items":[`...)
	for i, it := range res.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendJSONString(b, it.Key)
		if values {
			b = append(b, `,"value":`...)
			b = append(b, it.Value...)
		}
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, it.Version, 10)
		b = append(b, `,"expiresAt":`...)
		b = appendExpiry(b, it.ExpiresAt)
		b = append(b, '}')
	}
	b = append(b, `],"cursor":`...)
	if res.More && len(res.Items) > 0 {
		b = appendJSONString(b, encodeCursor(res.Items[len(res.Items)-1].Key))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, !res.More)
	b = append(b, "}}\n"...)
	return reply{status: http.StatusOK, body: b, header: readHeaders(nil, info)}, nil
}

// deletePrefix serves DELETE /kv/items?prefix=P: one atomic command deleting
// every key that starts with P.
func (a *api) deletePrefix(r *http.Request) (reply, error) {
	prefix, err := parsePrefix(r)
	if err != nil {
		return reply{}, err
	}
	if prefix == "" {
		return reply{}, errInvalidParameter("DELETE /kv/items needs a non-empty prefix, e.g. ?prefix=session%2Fuser-42%2F; deleting every key is not supported.")
	}
	opts, err := writeOptions(r, false, "prefix\x00"+prefix, nil)
	if err != nil {
		return reply{}, err
	}
	if opts.IfMatch != nil {
		return reply{}, errInvalidPrecondition("If-Match does not apply to a bulk delete; send it without.")
	}
	res, err := a.st.DeletePrefix(r.Context(), prefix, opts)
	if err != nil {
		return reply{}, err
	}
	rep, err := dataReply(http.StatusOK, struct {
		Deleted int `json:"deleted"`
	}{res.Deleted})
	rep.header = writeHeaders(0, res.Index)
	return rep, err
}
