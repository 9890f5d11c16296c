package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/store"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxValueBytes         = store.DefaultMaxValueBytes
	DefaultRequestTimeout        = 10 * time.Second
	DefaultMaxRestoreBytes int64 = 1 << 30
	DefaultRestoreTimeout        = 10 * time.Minute
	DefaultMaxListBytes    int64 = 4 << 20
	// MinMaxListBytes is the smallest list byte budget accepted: below it,
	// pages of ordinary keys would hold a handful of items.
	MinMaxListBytes int64 = 4 << 10
)

// maxMaxValueBytes bounds MaxValueBytes so that the body limit (value plus
// envelope allowance) cannot overflow and a misconfiguration cannot let one
// request buffer gigabytes. Values this large do not belong in a raft log.
const maxMaxValueBytes = store.MaxMaxValueBytes

// Config configures the HTTP API. The zero value of every field except APIKey
// selects a default; call Validate (New does) before use.
type Config struct {
	// APIKey is a shared secret with the admin scope that requests present as
	// "Authorization: Bearer <APIKey>". It may not contain whitespace or
	// control characters, since those cannot travel in a bearer token. It can
	// be combined with Keys.
	APIKey string

	// Keys holds named, scoped keys (read, write, admin); the caller may
	// Replace its contents at any time (SIGHUP reload). At least one of APIKey
	// and Keys is required unless InsecureNoAuth is set: a node never serves
	// data unauthenticated by accident.
	Keys *Keyring

	// InsecureNoAuth turns authentication off: every request acts with the
	// admin scope as "anonymous". Only for isolated test setups; New logs a
	// warning and GET /cluster/status reports it.
	InsecureNoAuth bool

	// InsecurePeer tells the API that the node's peer port runs without
	// mutual TLS (kvnode --insecure-peer): GET /cluster/status reports it
	// with a warning. It changes nothing else here.
	InsecurePeer bool

	// MaxValueBytes is the largest value accepted by PUT, measured after the
	// value is compacted. Request bodies are cut off while being read at
	// MaxValueBytes plus a small allowance for the envelope. Zero means
	// DefaultMaxValueBytes (1 MiB); at most 1 GiB.
	MaxValueBytes int64

	// MaxTxnOps and MaxTxnChecks bound POST /kv/txn's operations and checks
	// (give the store the same limits). Zero means store.DefaultMaxTxnItems;
	// at most store.MaxTxnItems.
	MaxTxnOps    int
	MaxTxnChecks int

	// MaxListBytes is the byte budget of one GET /kv/items page: items are
	// added while the response body stays within it, and the page then ends
	// with a cursor and "complete": false. The first item of a page is always
	// included, so one value larger than the budget still pages through.
	// Zero means DefaultMaxListBytes (4 MiB); at least MinMaxListBytes.
	MaxListBytes int64

	// Watch bounds watch streams and blocking reads (watch.go).
	Watch WatchConfig

	// RequestTimeout is the deadline put on the context passed to Store for
	// each request. Zero means DefaultRequestTimeout (10s). Server-level
	// read/write timeouts belong to the http.Server that serves this handler.
	RequestTimeout time.Duration

	// Clock is the node's clock, used only to compute ttlRemainingMs in read
	// responses. Nil means time.Now.
	Clock func() time.Time

	// MaxRestoreBytes bounds the body of POST /admin/restore (a backup file),
	// cut off while it is read. Zero means DefaultMaxRestoreBytes (1 GiB).
	MaxRestoreBytes int64

	// RestoreTimeout is the deadline of POST /admin/restore: upload,
	// verification and replication of the whole dataset. Zero means
	// DefaultRestoreTimeout (10 min).
	RestoreTimeout time.Duration

	// Logger receives request logs (see RequestLog) and internal errors
	// (error). New adds component=httpapi. Nil discards logs.
	Logger *slog.Logger

	// RequestLog selects the requests logged at info level (the others go to
	// debug): RequestLogErrors (zero value: 5xx, 401/403 and slow requests),
	// RequestLogAll or RequestLogOff.
	RequestLog RequestLogMode

	// Metrics is the node's Prometheus registry: New registers the request
	// metrics on it, and GET /metrics serves everything registered on it (the
	// store's metrics, the Go runtime's, ...). Nil means a registry of the
	// API's own, holding only the request metrics.
	Metrics *prometheus.Registry

	// MetricsPublic serves GET /metrics without authentication, for scrapers
	// that cannot send a bearer token. Otherwise it needs the read scope.
	MetricsPublic bool
}

// Validate reports whether c is usable. Zero fields that have defaults are valid.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.InsecureNoAuth && (c.APIKey != "" || c.Keys != nil):
		errs = append(errs, errors.New("httpapi: InsecureNoAuth cannot be combined with API keys"))
	case !c.InsecureNoAuth && c.APIKey == "" && c.Keys == nil:
		errs = append(errs, errors.New("httpapi: an APIKey or Keys is required (or InsecureNoAuth, explicitly)"))
	case strings.IndexFunc(c.APIKey, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		errs = append(errs, errors.New("httpapi: APIKey must not contain whitespace or control characters"))
	}
	if c.MaxTxnOps < 0 || c.MaxTxnOps > store.MaxTxnItems || c.MaxTxnChecks < 0 || c.MaxTxnChecks > store.MaxTxnItems {
		errs = append(errs, fmt.Errorf("httpapi: MaxTxnOps and MaxTxnChecks must be between 0 (default %d) and %d, got %d and %d",
			store.DefaultMaxTxnItems, store.MaxTxnItems, c.MaxTxnOps, c.MaxTxnChecks))
	}
	if c.MaxValueBytes < 0 || c.MaxValueBytes > maxMaxValueBytes {
		errs = append(errs, fmt.Errorf("httpapi: MaxValueBytes must be between 0 (default %d) and %d, got %d",
			DefaultMaxValueBytes, maxMaxValueBytes, c.MaxValueBytes))
	}
	if c.MaxListBytes != 0 && (c.MaxListBytes < MinMaxListBytes || c.MaxListBytes > maxMaxValueBytes) {
		errs = append(errs, fmt.Errorf("httpapi: MaxListBytes must be 0 (default %d) or between %d and %d, got %d",
			DefaultMaxListBytes, MinMaxListBytes, maxMaxValueBytes, c.MaxListBytes))
	}
	if c.MaxRestoreBytes < 0 || c.RestoreTimeout < 0 {
		errs = append(errs, fmt.Errorf("httpapi: MaxRestoreBytes and RestoreTimeout must not be negative"))
	}
	switch c.RequestLog {
	case "", RequestLogErrors, RequestLogAll, RequestLogOff:
	default:
		errs = append(errs, fmt.Errorf("httpapi: RequestLog must be %q, %q or %q, got %q", RequestLogErrors, RequestLogAll, RequestLogOff, c.RequestLog))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("httpapi: RequestTimeout must not be negative, got %v", c.RequestTimeout))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = store.DefaultMaxTxnItems
	}
	if c.MaxTxnChecks == 0 {
		c.MaxTxnChecks = store.DefaultMaxTxnItems
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxListBytes == 0 {
		c.MaxListBytes = DefaultMaxListBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	c.Watch = c.Watch.withDefaults()
	if c.MaxRestoreBytes == 0 {
		c.MaxRestoreBytes = DefaultMaxRestoreBytes
	}
	if c.RestoreTimeout == 0 {
		c.RestoreTimeout = DefaultRestoreTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.RequestLog == "" {
		c.RequestLog = RequestLogErrors
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	c.Logger = c.Logger.With("component", "httpapi")
	return c
}
