package client

import (
	"fmt"
	"strconv"
	"time"
)

// Option adjusts one call. Each method documents the options it accepts; any
// other option makes the call fail with ErrInvalidOption before anything is
// sent.
type Option func(*options)

// options collects the Options of one call. set records which were given, so
// each method can refuse the ones that do not apply to it.
type options struct {
	set uint

	ttl            time.Duration
	ifMatch        uint64
	idempotencyKey string
	minIndex       uint64
}

const (
	optTTL = 1 << iota
	optIfMatch
	optIfNoneMatch
	optKeepTTL
	optStale
	optMinIndex
	optIdempotencyKey
	optForceRestore
)

var optionNames = []struct {
	bit  uint
	name string
}{
	{optTTL, "TTL"}, {optIfMatch, "IfMatch"}, {optIfNoneMatch, "IfNoneMatch"}, {optKeepTTL, "KeepTTL"},
	{optStale, "Stale"}, {optMinIndex, "MinIndex"}, {optIdempotencyKey, "IdempotencyKey"},
	{optForceRestore, "ForceRestore"},
}

// TTL sets the key's time to live, rounded to the millisecond; it must be
// between 1 ms and 10 years. Put: the key expires after d (without TTL it
// never expires, unless KeepTTL). Incr: applies only when the counter is
// created.
func TTL(d time.Duration) Option {
	return func(o *options) { o.set |= optTTL; o.ttl = d }
}

// IfMatch makes a write conditional on the key's current version being
// version (a missing key never matches): otherwise it fails with
// ErrVersionMismatch, and CurrentVersion(err) tells the actual version.
// Accepted by Put, Delete, Patch and Incr.
func IfMatch(version uint64) Option {
	return func(o *options) { o.set |= optIfMatch; o.ifMatch = version }
}

// IfNoneMatch makes a Put create-only (If-None-Match: *): it fails with
// ErrAlreadyExists when the key is live. An expired key counts as absent.
func IfNoneMatch() Option {
	return func(o *options) { o.set |= optIfNoneMatch }
}

// KeepTTL makes a Put keep the live key's current expiry (none if the key was
// absent). It cannot be combined with TTL.
func KeepTTL() Option {
	return func(o *options) { o.set |= optKeepTTL }
}

// ForceRestore lets Restore replace the data with a backup taken from
// another cluster, or one that names no cluster (an older file); without it
// such a restore fails with ErrClusterMismatch and changes nothing.
func ForceRestore() Option {
	return func(o *options) { o.set |= optForceRestore }
}

// Stale makes a read (Get, List) be served from the receiving node's own
// state, without contacting the leader: faster, possibly behind.
func Stale() Option {
	return func(o *options) { o.set |= optStale }
}

// MinIndex makes a read wait until the node has applied log index n (from a
// write's Result.Index): read-your-writes, usually combined with Stale.
func MinIndex(n uint64) Option {
	return func(o *options) { o.set |= optMinIndex; o.minIndex = n }
}

// IdempotencyKey replaces the key the client generates for a write, for a
// caller that retries across processes (e.g. a job re-run after a crash): the
// same key and the same request apply at most once within the server's window
// (10 minutes). 1-128 visible ASCII bytes, no spaces.
func IdempotencyKey(key string) Option {
	return func(o *options) { o.set |= optIdempotencyKey; o.idempotencyKey = key }
}

// collect applies opts and checks that only the allowed ones were given.
func collect(method string, allowed uint, opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if extra := o.set &^ allowed; extra != 0 {
		for _, n := range optionNames {
			if extra&n.bit != 0 {
				return o, fmt.Errorf("client: %s does not accept the %s option: %w", method, n.name, ErrInvalidOption)
			}
		}
	}
	if o.set&optTTL != 0 && o.set&optKeepTTL != 0 {
		return o, fmt.Errorf("client: %s: TTL and KeepTTL cannot be combined: %w", method, ErrInvalidOption)
	}
	if o.set&optIfMatch != 0 && o.set&optIfNoneMatch != 0 {
		return o, fmt.Errorf("client: %s: IfMatch and IfNoneMatch cannot be combined: %w", method, ErrInvalidOption)
	}
	if o.set&optTTL != 0 {
		if _, err := ttlSeconds(o.ttl); err != nil {
			return o, fmt.Errorf("client: %s: %w", method, err)
		}
	}
	if o.set&optIdempotencyKey != 0 && !validIdempotencyKey(o.idempotencyKey) {
		return o, fmt.Errorf("client: %s: IdempotencyKey must be 1-128 visible ASCII bytes without spaces: %w", method, ErrInvalidOption)
	}
	if o.set&optMinIndex != 0 && o.minIndex == 0 {
		return o, fmt.Errorf("client: %s: MinIndex must be positive: %w", method, ErrInvalidOption)
	}
	return o, nil
}

func (o options) has(bit uint) bool { return o.set&bit != 0 }

// maxTTL is the server's limit: 10 Julian years.
const maxTTL = 315_576_000 * time.Second

// ttlSeconds renders d, rounded to the millisecond, as the JSON number of
// seconds the API expects ("1.5" for 1500 ms), exactly (no float64).
func ttlSeconds(d time.Duration) (string, error) {
	ms := d.Round(time.Millisecond).Milliseconds()
	if ms < 1 || d > maxTTL {
		return "", fmt.Errorf("TTL %v is outside 1ms to 10 years: %w", d, ErrInvalidOption)
	}
	s := strconv.FormatInt(ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		f := fmt.Sprintf("%03d", frac)
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		s += "." + f
	}
	return s, nil
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
