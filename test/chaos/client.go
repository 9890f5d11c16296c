package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiClient speaks quorumkv's HTTP API to the nodes from the root namespace.
type apiClient struct {
	http   *http.Client
	apiKey string
}

func newAPIClient(apiKey string, timeout time.Duration) *apiClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     10 * time.Second,
	}
	return &apiClient{http: &http.Client{Transport: tr, Timeout: timeout}, apiKey: apiKey}
}

func (c *apiClient) close() { c.http.CloseIdleConnections() }

type response struct {
	status int
	body   []byte
	code   string // error.code of an error body
	// current is a 412's "currentVersion" (0 when null: the key is absent).
	current uint64
}

func (c *apiClient) do(ctx context.Context, method, rawURL string, body []byte) (response, error) {
	return c.doWith(ctx, method, rawURL, body, nil)
}

// doWith is do with extra request headers (If-Match, If-None-Match).
func (c *apiClient) doWith(ctx context.Context, method, rawURL string, body []byte, hdr map[string]string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, body: b}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				Code           string  `json:"code"`
				CurrentVersion *uint64 `json:"currentVersion"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		r.code = e.Error.Code
		if e.Error.CurrentVersion != nil {
			r.current = *e.Error.CurrentVersion
		}
	}
	return r, nil
}

func itemURL(base, key string) string { return base + "/kv/items/" + url.PathEscape(key) }

// execute performs op against base and fills in its outcome and outputs.
func (c *apiClient) execute(ctx context.Context, base string, op *Op) {
	var resp response
	var err error
	switch op.Kind {
	case opGet:
		resp, err = c.do(ctx, http.MethodGet, itemURL(base, op.Key), nil)
	case opPut:
		body := map[string]any{"value": op.Value}
		if op.TTLms > 0 {
			body["ttlSeconds"] = float64(op.TTLms) / 1000
		}
		b, _ := json.Marshal(body)
		var hdr map[string]string
		switch {
		case op.IfMatch != 0:
			hdr = map[string]string{"If-Match": fmt.Sprintf("%q", strconv.FormatUint(op.IfMatch, 10))}
		case op.IfAbsent:
			hdr = map[string]string{"If-None-Match": "*"}
		}
		resp, err = c.doWith(ctx, http.MethodPut, itemURL(base, op.Key), b, hdr)
	case opDelete:
		resp, err = c.do(ctx, http.MethodDelete, itemURL(base, op.Key), nil)
	}
	if err != nil {
		op.Code = transportError(err)
		op.Outcome = outFail
		var oe *net.OpError
		if op.isWrite() && !(errors.As(err, &oe) && oe.Op == "dial") {
			// The request may have reached the node. A failed dial (refused,
			// unreachable) sent nothing, so it is a definite failure.
			op.Outcome = outUnknown
		}
		return
	}
	op.Code = strconv.Itoa(resp.status)
	if resp.code != "" {
		op.Code += " " + resp.code
	}
	switch {
	case resp.status == http.StatusOK || resp.status == http.StatusCreated:
		if err := decodeSuccess(op, resp); err != nil {
			op.Code += " undecodable: " + err.Error()
			op.Outcome = outFail
			if op.isWrite() {
				op.Outcome = outUnknown
			}
			return
		}
		op.Outcome = outOK
	case op.Kind == opGet && resp.status == http.StatusNotFound && resp.code == "not_found":
		op.Outcome = outOK
	case op.conditional() && resp.status == http.StatusPreconditionFailed:
		// The condition was false when the state machine applied the write:
		// nothing was written (a definite failure), but the answer says what
		// the key's version was, and the model checks it.
		op.Outcome = outFail
		op.Precond = true
		op.Version = resp.current
	case !op.isWrite():
		op.Outcome = outFail
	case resp.code == "no_leader" || resp.code == "shutting_down" || resp.status/100 == 4:
		// The API's contract: nothing was written.
		op.Outcome = outFail
	default:
		// outcome_unknown, timeout, canceled, internal: it may have been applied.
		op.Outcome = outUnknown
	}
}

func decodeSuccess(op *Op, resp response) error {
	var env struct {
		Data struct {
			Value     json.RawMessage `json:"value"`
			Version   uint64          `json:"version"`
			ExpiresAt *time.Time      `json:"expiresAt"`
			Deleted   bool            `json:"deleted"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &env); err != nil {
		return err
	}
	d := env.Data
	op.Version = d.Version
	if d.ExpiresAt != nil {
		op.ExpiresAt = d.ExpiresAt.UnixMilli()
	}
	switch op.Kind {
	case opGet:
		op.Found = true
		if err := json.Unmarshal(d.Value, &op.Got); err != nil {
			// Not one of our string values: record it verbatim; the model rejects it.
			op.Got = "non-string:" + string(d.Value)
		}
	case opPut:
		op.Created = resp.status == http.StatusCreated
	case opDelete:
		op.Deleted = d.Deleted
	}
	return nil
}

func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	default:
		return "transport: " + err.Error()
	}
}

// member is one entry of GET /cluster/nodes.
type member struct {
	ID       string `json:"id"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// members returns the cluster configuration as node base sees it.
func (c *apiClient) members(ctx context.Context, base string) ([]member, error) {
	var env struct {
		Data struct {
			Nodes []member `json:"nodes"`
		} `json:"data"`
	}
	err := c.getJSON(ctx, base+"/cluster/nodes", &env)
	return env.Data.Nodes, err
}

// removeMember sends DELETE /cluster/nodes/{id} to base. A 404
// node_not_found counts as done (an earlier attempt of unknown outcome
// removed it).
func (c *apiClient) removeMember(ctx context.Context, base, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, base+"/cluster/nodes/"+url.PathEscape(id), nil)
	switch {
	case err != nil:
		return err
	case resp.status == http.StatusOK, resp.status == http.StatusNotFound && resp.code == "node_not_found":
		return nil
	}
	return fmt.Errorf("DELETE /cluster/nodes/%s: %d %s", id, resp.status, bytes.TrimSpace(resp.body))
}

// listedItem is one entry of GET /kv/items?values=true.
type listedItem struct {
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Version uint64          `json:"version"`
}

// listAll pages through GET /kv/items?prefix=P&values=true (linearizable) on base.
func (c *apiClient) listAll(ctx context.Context, base, prefix string) ([]listedItem, error) {
	var all []listedItem
	cursor := ""
	for {
		q := url.Values{"prefix": {prefix}, "limit": {"1000"}, "values": {"true"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var env struct {
			Data struct {
				Items    []listedItem `json:"items"`
				Cursor   *string      `json:"cursor"`
				Complete bool         `json:"complete"`
			} `json:"data"`
		}
		if err := c.getJSON(ctx, base+"/kv/items?"+q.Encode(), &env); err != nil {
			return all, err
		}
		all = append(all, env.Data.Items...)
		if env.Data.Complete || env.Data.Cursor == nil {
			return all, nil
		}
		cursor = *env.Data.Cursor
	}
}

// nodeStatus is the part of GET /cluster/status the suite uses.
type nodeStatus struct {
	NodeID       string `json:"nodeId"`
	State        string `json:"state"`
	LeaderID     string `json:"leaderId"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

func (c *apiClient) status(ctx context.Context, base string) (nodeStatus, error) {
	var env struct {
		Data nodeStatus `json:"data"`
	}
	return env.Data, c.getJSON(ctx, base+"/cluster/status", &env)
}

type debugState struct {
	AppliedIndex uint64 `json:"appliedIndex"`
	StateHash    string `json:"stateHash"`
}

func (c *apiClient) debugState(ctx context.Context, base string) (debugState, error) {
	var env struct {
		Data debugState `json:"data"`
	}
	return env.Data, c.getJSON(ctx, base+"/debug/state", &env)
}

func (c *apiClient) getJSON(ctx context.Context, u string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, resp.status, resp.body)
	}
	return json.Unmarshal(resp.body, v)
}
