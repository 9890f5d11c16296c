package client

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are the base URLs of the nodes, e.g. "http://10.0.0.1:8080".
	// A URL without a scheme gets "http://". The client starts with the first
	// and moves to the next one whenever an attempt fails in a retryable way.
	Endpoints []string

	// APIKey is sent as "Authorization: Bearer <APIKey>"; empty sends none.
	APIKey string

	// HTTPClient sends the requests; nil uses a client of its own over
	// http.DefaultTransport. Its Timeout, if any, bounds every attempt,
	// including streaming a snapshot, so prefer Config.Timeout.
	HTTPClient *http.Client

	// Timeout bounds one attempt of a request (not a whole call, which the
	// caller's context bounds). 0 means DefaultTimeout; negative means none.
	// It is above the server's default request deadline (10 s) so the server
	// answers first. Snapshot and Restore stream and use only the context.
	Timeout time.Duration

	// Retry says how often and how fast failed attempts are retried. The zero
	// value means DefaultRetryPolicy().
	Retry RetryPolicy

	// UserAgent is sent as the User-Agent header; empty sends "quorumkv-go".
	UserAgent string
}

// DefaultTimeout is the per-attempt timeout when Config.Timeout is 0.
const DefaultTimeout = 15 * time.Second

// RetryPolicy bounds retries. Attempt n (from 0) waits a random duration in
// [d/2, d] before it starts, where d = min(BaseDelay·2^(n-1), MaxDelay); the
// first attempt does not wait. The caller's context bounds everything: when it
// ends, the call returns the last error, wrapped together with the context's.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts per call, the first
	// included. 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt.
	BaseDelay time.Duration
	// MaxDelay caps the backoff.
	MaxDelay time.Duration
}

// DefaultRetryPolicy retries up to 8 attempts with backoff from 50 ms to 2 s:
// about 6 s of waiting in all, enough to ride out a leader election (a few
// heartbeat timeouts) on any node. With the default Timeout a call spans at
// most about 2 minutes (RetrySpan), well inside the 10 minutes for which the
// cluster remembers the call's Idempotency-Key.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 8, BaseDelay: 50 * time.Millisecond, MaxDelay: 2 * time.Second}
}

// NoRetry makes every call a single attempt.
func NoRetry() RetryPolicy { return RetryPolicy{MaxAttempts: 1} }

// MaxRetrySpan bounds how long the attempts of one call may span (RetrySpan):
// half of the 10 minutes for which the cluster remembers an Idempotency-Key.
// Every attempt of a write reuses the call's key, so any retry the client
// makes reaches the cluster while the first attempt's result is still
// remembered, and a write is never applied twice by the client's own
// retries, with room to spare for clock error and slow networks.
const MaxRetrySpan = 5 * time.Minute

// RetrySpan is the longest the attempts of one call can span under c, from
// the start of the first to the end of the last: every attempt running for
// its whole Timeout and every backoff at its longest. The default policy
// spans about 2 minutes (8 attempts of 15 s and 5.2 s of backoff). It is
// unbounded (math.MaxInt64) when attempts have no timeout (Timeout < 0) and
// are retried.
func (c Config) RetrySpan() time.Duration {
	r, timeout := c.Retry, c.Timeout
	if r == (RetryPolicy{}) {
		r = DefaultRetryPolicy()
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if r.MaxAttempts <= 1 {
		return max(timeout, 0)
	}
	if timeout < 0 {
		return math.MaxInt64
	}
	span, d := time.Duration(0), r.BaseDelay
	for n := 1; n <= r.MaxAttempts; n++ {
		if n > 1 {
			span += min(d, r.MaxDelay)
			if d < r.MaxDelay {
				d *= 2
			}
		}
		span += timeout
		if span > MaxRetrySpan {
			return span // already too long; the rest cannot bring it back
		}
	}
	return span
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("client: Config.Endpoints is empty; give at least one node URL such as http://127.0.0.1:8081")
	}
	for _, e := range c.Endpoints {
		if _, err := normalizeEndpoint(e); err != nil {
			return err
		}
	}
	r := c.Retry
	if r != (RetryPolicy{}) {
		switch {
		case r.MaxAttempts < 1:
			return fmt.Errorf("client: Retry.MaxAttempts is %d; it must be at least 1", r.MaxAttempts)
		case r.BaseDelay < 0 || r.MaxDelay < 0:
			return errors.New("client: Retry delays must not be negative")
		case r.MaxDelay < r.BaseDelay:
			return fmt.Errorf("client: Retry.MaxDelay (%v) is below BaseDelay (%v)", r.MaxDelay, r.BaseDelay)
		}
	}
	if span := c.RetrySpan(); span > MaxRetrySpan {
		what := span.String()
		if span == math.MaxInt64 {
			what = "without limit (a negative Timeout leaves attempts unbounded)"
		}
		return fmt.Errorf("client: Retry and Timeout let one call's attempts span %s, beyond MaxRetrySpan (%v): "+
			"the cluster remembers Idempotency-Keys for 10 minutes, so a later retry could apply a write twice; "+
			"lower Retry.MaxAttempts, Retry.MaxDelay or Timeout", what, MaxRetrySpan)
	}
	return nil
}

// normalizeEndpoint turns "host:port" or "http://host:port/" into a base URL
// without a trailing slash.
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", errors.New("client: an endpoint is empty")
	}
	if !strings.Contains(e, "://") {
		e = "http://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", fmt.Errorf("client: endpoint %q: %w", e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("client: endpoint %q: scheme must be http or https", e)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("client: endpoint %q must be a base URL like http://host:port", e)
	}
	return strings.TrimRight(e, "/"), nil
}
