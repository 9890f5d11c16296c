package devcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NodeStatus is the part of GET /cluster/status the launcher reads.
type NodeStatus struct {
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"appliedIndex"`
	LeaderID     string `json:"leaderId"`
}

// Member is one entry of GET /cluster/nodes.
type Member struct {
	ID       string `json:"id"`
	Suffrage string `json:"suffrage"`
}

// client returns an HTTP client that trusts the cluster's CA when the API is
// served over HTTPS.
func (c *Cluster) client() (*http.Client, error) {
	if !c.tlsOn() {
		return &http.Client{}, nil
	}
	ca, err := os.ReadFile(filepath.Join(c.certsDir(), "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("HTTPS is on but the CA is unreadable: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", filepath.Join(c.certsDir(), "ca.pem"))
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// call sends an authenticated request to node n and decodes the "data" member
// of a 2xx answer into out (when not nil). Any other answer is an error that
// carries the response body.
func (c *Cluster) call(n int, method, path string, timeout time.Duration, out any) error {
	key, err := c.APIKey()
	if err != nil {
		return err
	}
	hc, err := c.client()
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.URL(n)+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on n%d: HTTP %d: %s", method, path, n, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s %s on n%d: not JSON: %v", method, path, n, err)
	}
	return json.Unmarshal(env.Data, out)
}

// Status asks node n for its raft status.
func (c *Cluster) Status(n int) (NodeStatus, error) {
	var st NodeStatus
	err := c.call(n, http.MethodGet, "/cluster/status", 2*time.Second, &st)
	return st, err
}

// Nodes asks node n for the cluster's configuration.
func (c *Cluster) Nodes(n int) ([]Member, error) {
	var r struct {
		Nodes []Member `json:"nodes"`
	}
	err := c.call(n, http.MethodGet, "/cluster/nodes", 2*time.Second, &r)
	return r.Nodes, err
}
