package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// apiClient talks to the cluster's published ports with the project's key.
type apiClient struct {
	key  string
	http *http.Client
}

// response is one API answer: the status and the raw body.
type response struct {
	status int
	body   []byte
}

// do sends one request. Transport errors (a container restarting) are
// returned as errors, API errors as a response.
func (c *apiClient) do(method, url, body string) (response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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
	return response{status: resp.StatusCode, body: b}, nil
}

// retryable is true for the answers the contract says to retry: 503 with
// retryable true (no_leader, outcome_unknown, timeout, shutting_down). PUT and
// DELETE are safe to repeat, so a retried write is still exactly one write.
func (r response) retryable() bool {
	var e struct {
		Error struct {
			Retryable bool `json:"retryable"`
		} `json:"error"`
	}
	return r.status == http.StatusServiceUnavailable && json.Unmarshal(r.body, &e) == nil && e.Error.Retryable
}

// doRetry repeats a request while it fails with a transport error or a
// retryable answer, for up to patience; it returns the last answer.
func (c *apiClient) doRetry(t *testing.T, patience time.Duration, method, url, body string) response {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		resp, err := c.do(method, url, body)
		if err == nil && !resp.retryable() {
			return resp
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s %s: still failing after %s: %v", method, url, patience, err)
			}
			t.Fatalf("%s %s: still %d after %s: %s", method, url, resp.status, patience, resp.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// status is the part of GET /cluster/status the test reads.
type status struct {
	NodeID       string `json:"nodeId"`
	State        string `json:"state"`
	LeaderID     string `json:"leaderId"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

func (c *apiClient) status(url string) (status, error) {
	resp, err := c.do(http.MethodGet, url, "")
	if err != nil {
		return status{}, err
	}
	if resp.status != http.StatusOK {
		return status{}, fmt.Errorf("%d %s", resp.status, resp.body)
	}
	var env struct {
		Data status `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &env); err != nil {
		return status{}, err
	}
	return env.Data, nil
}

// item is the data of a successful GET.
type item struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// wantJSON decodes an answer's data into v after checking its status.
func wantJSON(t *testing.T, what string, r response, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if v == nil {
		return
	}
	env := struct {
		Data any `json:"data"`
	}{Data: v}
	if err := json.NewDecoder(bytes.NewReader(r.body)).Decode(&env); err != nil {
		t.Fatalf("%s: %v in %s", what, err, r.body)
	}
}
