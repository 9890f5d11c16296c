package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Client talks to a quorumkv cluster. Create it with New.
type Client struct {
	endpoints []string
	apiKey    string
	userAgent string
	http      *http.Client
	timeout   time.Duration // per attempt; 0: none
	callLimit time.Duration // per call, attempts and backoff; 0: none
	retry     RetryPolicy
	spread    bool // SpreadReads

	// ownTransport is the transport New built (nil with Config.HTTPClient);
	// Close releases its idle connections.
	ownTransport *http.Transport

	// next is the index (mod len(endpoints)) of the endpoint new calls start
	// on. A retryable failure moves it past the failing endpoint, so calls
	// made concurrently or afterwards avoid it too.
	next atomic.Uint64
	// readNext rotates the starting endpoint of reads under SpreadReads.
	readNext atomic.Uint64

	// flights is GetOrCompute's in-process single-flight: key → *flight.
	// flightsLanded counts finished flights, so a caller can tell that one
	// ended while it was reading.
	flightsMu     sync.Mutex
	flights       map[string]*flight
	flightsLanded atomic.Uint64
}

// New returns a Client for cfg, after validating it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{apiKey: cfg.APIKey, userAgent: cfg.UserAgent, http: cfg.HTTPClient, retry: cfg.Retry, spread: cfg.SpreadReads}
	for _, e := range cfg.Endpoints {
		n, _ := normalizeEndpoint(e, cfg.TLS != nil) // validated above
		c.endpoints = append(c.endpoints, n)
	}
	if c.http == nil {
		var tc *tls.Config
		if cfg.TLS != nil {
			var err error
			if tc, err = cfg.TLS.clientConfig(); err != nil {
				return nil, err
			}
		}
		conns := cfg.MaxConnsPerNode
		if conns == 0 {
			conns = DefaultMaxConnsPerNode
		}
		c.ownTransport = newTransport(conns, len(c.endpoints), tc)
		c.http = &http.Client{Transport: c.ownTransport}
	}
	switch {
	case cfg.Timeout == 0:
		c.timeout = DefaultTimeout
	case cfg.Timeout > 0:
		c.timeout = cfg.Timeout
	}
	switch {
	case cfg.CallTimeout == 0:
		c.callLimit = DefaultCallTimeout
	case cfg.CallTimeout > 0:
		c.callLimit = cfg.CallTimeout
	}
	if c.retry == (RetryPolicy{}) {
		c.retry = DefaultRetryPolicy()
	}
	if c.userAgent == "" {
		c.userAgent = "quorumkv-go"
	}
	return c, nil
}

// Close closes the idle connections of the client's own pool. The Client
// stays usable (a later call opens new connections); Close is for a program
// that is done with it.
func (c *Client) Close() {
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
}

// Endpoints returns the normalized endpoint URLs, in configuration order.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// call describes one logical request; do sends it, as many times as the retry
// policy allows, always with the same bytes and headers.
type call struct {
	method string
	path   string     // escaped path, e.g. /kv/items/a%2Fb
	query  url.Values // may be nil
	header http.Header
	body   []byte // nil: no body (unless stream is set)

	// stream, when set, is the body instead of body. It is rewound with Seek
	// before each retry when it is an io.Seeker; otherwise the call gets one
	// attempt.
	stream io.Reader

	// replayable is true when sending the request again cannot apply it
	// twice: reads, writes carrying an Idempotency-Key, and admin calls that
	// are idempotent by contract. Other calls are retried only when the
	// failure proves the request was not acted on (a refused connection,
	// no_leader, shutting_down, disk_error).
	replayable bool

	// streaming disables the per-attempt and per-call timeouts (snapshots
	// can take long).
	streaming bool

	// read marks a call SpreadReads may start on any node.
	read bool
}

// result is a successful (2xx) response with its body read.
type result struct {
	status   int
	header   http.Header
	body     []byte
	endpoint string
}

// do sends c and returns its 2xx response. Errors are *APIError, or the
// context's error (wrapped with the last attempt's error, if any).
func (c *Client) do(ctx context.Context, cl *call) (*result, error) {
	var res *result
	err := c.doFunc(ctx, cl, func(endpoint string, resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true,
				Err: fmt.Errorf("reading the response: %w", err)}
		}
		res = &result{status: resp.StatusCode, header: resp.Header, body: body, endpoint: endpoint}
		return nil
	})
	return res, err
}

// doFunc sends cl until an attempt gets a 2xx answer, which it hands to
// handle. An error from handle is treated like any failed attempt (retried
// if retryable), unless it is a finalError: a handler that has already
// passed data on (a snapshot streaming into the caller's writer) must not be
// repeated.
func (c *Client) doFunc(ctx context.Context, cl *call, handle func(endpoint string, resp *http.Response) error) error {
	if c.callLimit > 0 && !cl.streaming {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.callLimit,
			fmt.Errorf("client: the call ran out of its CallTimeout (%v): %w", c.callLimit, context.DeadlineExceeded))
		defer cancel()
	}
	start := c.next.Load()
	spread := c.spread && cl.read
	if spread {
		start = c.readNext.Add(1) - 1
	}
	n := uint64(len(c.endpoints))
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, c.backoff(attempt)); err != nil {
				return fmt.Errorf("%w (gave up after %d attempts: %w)", last, attempt, context.Cause(ctx))
			}
		}
		idx := start + uint64(attempt)
		endpoint := c.endpoints[idx%n]
		err := c.attempt(ctx, cl, endpoint, handle)
		if err == nil {
			return nil
		}
		var fe finalError
		if errors.As(err, &fe) {
			return fe.err
		}
		if ctx.Err() != nil {
			if last == nil {
				return fmt.Errorf("%w: %w", context.Cause(ctx), err)
			}
			return fmt.Errorf("%w (gave up after %d attempts: %w)", err, attempt+1, context.Cause(ctx))
		}
		last = err
		if !c.retryable(cl, err) {
			return err
		}
		// Move everyone off the failing endpoint (unless someone already
		// did). A spread read started on its own, so it moves only itself.
		if !spread {
			c.next.CompareAndSwap(idx, idx+1)
		}
		if attempt+1 >= c.retry.MaxAttempts || !c.rewind(cl) {
			return err
		}
	}
}

// finalError ends doFunc's retries with err.
type finalError struct{ err error }

func (f finalError) Error() string { return f.err.Error() }

// attempt sends cl once to endpoint.
func (c *Client) attempt(ctx context.Context, cl *call, endpoint string, handle func(string, *http.Response) error) error {
	if c.timeout > 0 && !cl.streaming {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := endpoint + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader
	switch {
	case cl.stream != nil:
		body = io.NopCloser(cl.stream) // hide the concrete type: no GetBody, no auto-rewind
	case cl.body != nil:
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
	if err != nil {
		return &APIError{Endpoint: endpoint, Code: "invalid_request", Err: err}
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := parseError(endpoint, resp.StatusCode, resp.Header.Get("X-Request-Id"), b)
		e.Index = indexOf(resp.Header)
		return e
	}
	return handle(endpoint, resp)
}

// retryable decides whether err, from one attempt of cl, is worth another
// attempt on the next endpoint.
func (c *Client) retryable(cl *call, err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	if ae.Status == 0 {
		if ae.Code != "unreachable" || isCertificateError(ae.Err) {
			return false // a certificate the client rejects stays rejected
		}
		// A refused or failed dial never reached a server: nothing was done.
		return cl.replayable || isDialError(ae.Err)
	}
	if !ae.Retryable {
		return false
	}
	if cl.replayable {
		return true
	}
	switch ae.Code {
	case "no_leader", "shutting_down", "disk_error", "unavailable":
		return true // the server says nothing was done
	}
	return false
}

// rewind prepares a streamed body for another attempt; false means it cannot.
func (c *Client) rewind(cl *call) bool {
	if cl.stream == nil {
		return true
	}
	s, ok := cl.stream.(io.Seeker)
	if !ok {
		return false
	}
	_, err := s.Seek(0, io.SeekStart)
	return err == nil
}

func isCertificateError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is the wait before attempt n (n ≥ 1): a random duration in
// [d/2, d], d = min(BaseDelay·2^(n-1), MaxDelay). Jitter keeps clients that
// failed together from retrying together.
func (c *Client) backoff(n int) time.Duration {
	d := c.retry.BaseDelay
	for i := 1; i < n && d < c.retry.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, c.retry.MaxDelay)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + mrand.N(d-half+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newIdempotencyKey returns a fresh random key: "kvc-" and 32 hex digits.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "kvc-" + hex.EncodeToString(b[:])
}

// indexOf reads the X-KV-Index header; 0 when absent.
func indexOf(h http.Header) uint64 {
	n, _ := strconv.ParseUint(h.Get("X-KV-Index"), 10, 64)
	return n
}
