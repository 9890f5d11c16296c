package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Status is one node's view of the cluster (GET /cluster/status).
type Status struct {
	NodeID       string  `json:"nodeId"`
	State        string  `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string  `json:"leaderId"`
	LeaderAddr   string  `json:"leaderAddr"`
	Term         uint64  `json:"term"`
	CommitIndex  uint64  `json:"commitIndex"`
	AppliedIndex uint64  `json:"appliedIndex"`
	Voters       []Voter `json:"voters"`
	// Keys counts stored entries, including expired ones not yet removed.
	Keys int `json:"keys"`
	// Build is the answering node's software; zero from a server that
	// predates it.
	Build Build `json:"build"`
	// Endpoint is the node that answered.
	Endpoint string `json:"-"`
}

// Build is a node's version, Go toolchain and source revision.
type Build struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Revision  string `json:"revision"` // "" when the binary does not know it
	Modified  bool   `json:"modified"`
}

// Voter is a voting member as listed by Status.
type Voter struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// Status asks one node (the current endpoint, or the next on failure) how it
// sees the cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	res, err := c.do(ctx, &call{method: http.MethodGet, path: "/cluster/status", replayable: true})
	if err != nil {
		return Status{}, err
	}
	var s Status
	if err := decodeData(res, &s); err != nil {
		return Status{}, err
	}
	s.Endpoint = res.endpoint
	return s, nil
}

// Node is one server of the cluster (GET /cluster/nodes).
type Node struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peerAddr"`
	HTTPAddr string `json:"httpAddr"`
	// Suffrage is "voter" or "nonvoter".
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// LastContactMs is the time since the leader last heard from this node,
	// in milliseconds; nil when unknown (or for the leader itself).
	LastContactMs *int64 `json:"lastContactMs"`
	AppliedIndex  uint64 `json:"appliedIndex"`
	Healthy       bool   `json:"healthy"`
	// Version is the node's software version as it last reported it to the
	// leader; "" when unknown. Differing versions show a rolling upgrade.
	Version string `json:"version"`
	// Raw is the node's JSON object as the server sent it, including fields
	// this client version does not know.
	Raw json.RawMessage `json:"-"`
}

// Nodes lists every server of the cluster with its suffrage and health.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	res, err := c.do(ctx, &call{method: http.MethodGet, path: "/cluster/nodes", replayable: true})
	if err != nil {
		return nil, err
	}
	// Accept {"data": {"nodes": [...]}} and {"data": [...]}.
	var raws []json.RawMessage
	var wrapped struct {
		Nodes []json.RawMessage `json:"nodes"`
	}
	if err := decodeData(res, &wrapped); err == nil && wrapped.Nodes != nil {
		raws = wrapped.Nodes
	} else if err := decodeData(res, &raws); err != nil {
		return nil, err
	}
	nodes := make([]Node, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &nodes[i]); err != nil {
			return nil, &APIError{Status: res.status, Endpoint: res.endpoint, Code: "invalid_response",
				Message: "a node in the response does not have the expected shape: " + err.Error(), Err: err}
		}
		nodes[i].Raw = raw
	}
	return nodes, nil
}

// JoinRequest describes a server to add.
type JoinRequest struct {
	ID string `json:"id"`
	// PeerAddr is the host:port other nodes dial for raft and forwarding.
	PeerAddr string `json:"peerAddr"`
	// HTTPAddr is the node's API address, as clients reach it.
	HTTPAddr string `json:"httpAddr,omitempty"`
}

// Join adds a server to the cluster (as a non-voter, promoted once caught
// up). Joining again with the same id and address is a no-op, so a retried
// join is safe. Needs an admin key.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	if req.ID == "" || req.PeerAddr == "" {
		return fmt.Errorf("client: Join needs an ID and a PeerAddr: %w", ErrInvalidOption)
	}
	body, _ := json.Marshal(req) // strings only: cannot fail
	_, err := c.do(ctx, &call{method: http.MethodPost, path: "/cluster/nodes", body: body,
		header: writeHeader(options{}), replayable: true})
	return err
}

// Remove removes server id from the cluster (the server refuses to remove the
// last voter; removing the leader transfers leadership first). An unknown id
// is ErrNotFound. Needs an admin key.
func (c *Client) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("client: Remove needs a node id: %w", ErrInvalidOption)
	}
	_, err := c.do(ctx, &call{method: http.MethodDelete, path: "/cluster/nodes/" + url.PathEscape(id),
		header: writeHeader(options{}), replayable: true})
	return err
}

// TransferLeader moves leadership to server id, or to a server the cluster
// picks when id is empty, and returns the new leader's id when the server
// reports it. It is not retried once a node may have acted on it. Needs an
// admin key.
func (c *Client) TransferLeader(ctx context.Context, id string) (newLeader string, err error) {
	body := []byte(`{}`)
	if id != "" {
		body, _ = json.Marshal(struct {
			ID string `json:"id"`
		}{id})
	}
	res, err := c.do(ctx, &call{method: http.MethodPost, path: "/cluster/leader/transfer", body: body})
	if err != nil {
		return "", err
	}
	var d struct {
		LeaderID string `json:"leaderId"`
		ID       string `json:"id"`
	}
	if decodeData(res, &d) != nil { // the answer's shape is informational
		return "", nil
	}
	if d.LeaderID != "" {
		return d.LeaderID, nil
	}
	return d.ID, nil
}
