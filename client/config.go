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

	// HTTPClient sends the requests; nil uses a client of the package's own,
	// with a pool of MaxConnsPerNode keep-alive connections per node and TLS.
	// Its Timeout, if any, bounds every attempt, including streaming a
	// snapshot, so prefer Config.Timeout. TLS and MaxConnsPerNode cannot be
	// combined with it: configure its transport instead.
	HTTPClient *http.Client

	// TLS configures HTTPS (https:// endpoints). nil verifies the nodes
	// against the system's roots. When set, an endpoint without a scheme
	// gets https://, and an http:// endpoint is refused: the API key would
	// travel in clear text.
	TLS *TLSConfig

	// MaxConnsPerNode is the size of the connection pool of each node: the
	// most connections open to it at once, all kept alive when idle. Calls
	// beyond it in flight to one node wait for a free connection. 0 means
	// DefaultMaxConnsPerNode.
	MaxConnsPerNode int

	// CallTimeout bounds a whole call: every attempt and every backoff
	// between them (the caller's context may end it sooner). 0 means
	// DefaultCallTimeout; negative means only the context and RetrySpan
	// bound it. Snapshot and Restore stream and use only the context.
	CallTimeout time.Duration

	// SpreadReads starts each read (Get, List) on the next node in turn
	// instead of the node the client currently uses, spreading the read load
	// over the cluster. Most useful with Stale reads, which the receiving
	// node serves itself; a linearizable read is confirmed by the leader
	// whichever node receives it.
	SpreadReads bool

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

// DefaultCallTimeout bounds a whole call when Config.CallTimeout is 0: long
// enough for the default policy to ride out a leader election, short enough
// that a caller with a background context learns of an outage in seconds,
// not minutes.
const DefaultCallTimeout = 30 * time.Second

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
// heartbeat timeouts) on any node. The default CallTimeout ends a call after
// 30 s (RetrySpan), well inside the 10 minutes for which the cluster
// remembers the call's Idempotency-Key.
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
// its whole Timeout and every backoff at its longest, cut at CallTimeout.
// The default policy spans 30 s (DefaultCallTimeout; its 8 attempts of 15 s
// and 5.2 s of backoff alone could span 2 minutes). It is unbounded
// (math.MaxInt64) when attempts have no timeout (Timeout < 0), are retried
// and CallTimeout is negative.
func (c Config) RetrySpan() time.Duration {
	span := c.attemptSpan()
	switch {
	case c.CallTimeout == 0:
		return min(span, DefaultCallTimeout)
	case c.CallTimeout > 0:
		return min(span, c.CallTimeout)
	}
	return span
}

// attemptSpan is RetrySpan without CallTimeout.
func (c Config) attemptSpan() time.Duration {
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
		n, err := normalizeEndpoint(e, c.TLS != nil)
		if err != nil {
			return err
		}
		if c.TLS != nil && strings.HasPrefix(n, "http://") {
			return fmt.Errorf("client: endpoint %q is plain http:// but TLS is configured; use https:// (or drop the TLS settings)", e)
		}
	}
	if c.HTTPClient != nil && (c.TLS != nil || c.MaxConnsPerNode != 0) {
		return errors.New("client: Config.HTTPClient cannot be combined with TLS or MaxConnsPerNode; configure the HTTPClient's transport instead")
	}
	if c.MaxConnsPerNode < 0 {
		return fmt.Errorf("client: MaxConnsPerNode is %d; it must not be negative", c.MaxConnsPerNode)
	}
	if c.CallTimeout > MaxRetrySpan {
		return fmt.Errorf("client: CallTimeout %v is beyond MaxRetrySpan (%v): a retry could come after the cluster forgot the write's Idempotency-Key", c.CallTimeout, MaxRetrySpan)
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
// without a trailing slash; a bare host:port gets https:// when tls is set.
func normalizeEndpoint(e string, tls bool) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", errors.New("client: an endpoint is empty")
	}
	if !strings.Contains(e, "://") {
		if tls {
			e = "https://" + e
		} else {
			e = "http://" + e
		}
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
