package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// flight is one in-process computation of a key by GetOrCompute; the callers
// that join it wait on done and share item and err.
type flight struct {
	done chan struct{}
	item Item
	err  error
}

// lostRaces bounds how often GetOrCompute retries after losing the create
// race to a value that then vanished (deleted or expired before it could be
// read back).
const lostRaces = 2

// GetOrCompute returns the value at key, computing and storing it on a miss
// (cache-aside with stampede protection). Exactly:
//
//  1. If a GetOrCompute for key is already running in this process (on this
//     Client), the call waits for it and returns its result: fn runs at most
//     once per key at a time per Client (single-flight), and a caller whose
//     miss raced with a computation that has just finished reads again
//     instead of computing a second time.
//  2. Otherwise it reads key (linearizable). A hit is returned. An error
//     other than ErrNotFound is returned as is: fn is not called, since a
//     cluster that cannot answer reads would not store the result either.
//  3. On a miss it calls fn (with the caller's context) and stores the
//     result with a create-only write (If-None-Match: *) expiring after ttl
//     (0: never). fn's error is returned as is and nothing is stored. A
//     json.RawMessage result is stored verbatim, anything else as
//     encoding/json renders it.
//  4. If another process created the key first (412 already_exists), the
//     computed value is discarded and the winner's value is read and
//     returned, so every caller ends up with the value that is stored. If
//     the winner's value is gone again before it can be read, steps 3-4
//     are retried (up to twice more) with the value already computed.
//  5. If storing fails otherwise (cluster unavailable, unauthorized, ...),
//     the error is returned together with an Item whose Value is the
//     computed value and whose Version is 0: the caller may use it, but it
//     was not cached.
//
// Every caller gets its own copy of the Item (its Value may be modified).
// The computation runs under the context of the caller that started it; if
// that context ends, the callers waiting on it start over with their own
// (one of them then computes). A waiting caller whose own context ends stops
// waiting and returns its context's error. If fn panics, the panic propagates
// in the caller that ran it and the callers waiting on it get an error.
func (c *Client) GetOrCompute(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) (any, error)) (Item, error) {
	if ttl != 0 {
		if _, err := ttlSeconds(ttl); err != nil {
			return Item{}, fmt.Errorf("client: GetOrCompute: %w", err)
		}
	}
	if err := checkKey("GetOrCompute", key); err != nil {
		return Item{}, err
	}
	for {
		c.flightsMu.Lock()
		f, running := c.flights[key]
		c.flightsMu.Unlock()
		if running {
			select {
			case <-f.done:
			case <-ctx.Done():
				return Item{}, ctx.Err()
			}
			if isContextError(f.err) && ctx.Err() == nil {
				continue // the caller that computed gave up; try again with ours
			}
			it := f.item
			it.Value = bytes.Clone(it.Value) // each caller owns its Item
			return it, f.err
		}

		landed := c.flightsLanded.Load()
		it, err := c.Get(ctx, key)
		if err == nil {
			return it, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Item{}, err
		}

		c.flightsMu.Lock()
		if _, raced := c.flights[key]; raced {
			c.flightsMu.Unlock()
			continue // another goroutine started computing meanwhile: join it
		}
		if c.flights == nil {
			c.flights = map[string]*flight{}
		}
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.flightsMu.Unlock()

		// A flight that ended after our read may have just stored this key:
		// then read again rather than compute a second time.
		recheck := c.flightsLanded.Load() != landed
		c.runFlight(ctx, f, key, ttl, recheck, fn)
		return f.item, f.err
	}
}

// runFlight computes and stores key's value into f, then releases f's
// waiters, even if fn panics.
func (c *Client) runFlight(ctx context.Context, f *flight, key string, ttl time.Duration, recheck bool, fn func(context.Context) (any, error)) {
	finished := false
	defer func() {
		if !finished {
			f.item, f.err = Item{}, fmt.Errorf("client: GetOrCompute %q: the computation panicked in another goroutine", key)
		}
		c.flightsMu.Lock()
		delete(c.flights, key)
		c.flightsMu.Unlock()
		c.flightsLanded.Add(1)
		close(f.done)
	}()
	if recheck {
		it, err := c.Get(ctx, key)
		if err == nil || !errors.Is(err, ErrNotFound) {
			f.item, f.err, finished = it, err, true
			return
		}
	}
	f.item, f.err = c.computeAndStore(ctx, key, ttl, fn)
	finished = true
}

func (c *Client) computeAndStore(ctx context.Context, key string, ttl time.Duration, fn func(context.Context) (any, error)) (Item, error) {
	v, err := fn(ctx)
	if err != nil {
		return Item{}, err
	}
	raw, err := encodeValue(v)
	if err != nil {
		return Item{}, err
	}
	opts := []Option{IfNoneMatch()}
	if ttl != 0 {
		opts = append(opts, TTL(ttl))
	}
	for race := 0; ; race++ {
		res, err := c.Put(ctx, key, json.RawMessage(raw), opts...)
		switch {
		case err == nil:
			return Item{Key: key, Value: raw, Version: res.Version, ExpiresAt: res.ExpiresAt, TTLRemaining: ttl, Index: res.Index}, nil
		case !errors.Is(err, ErrAlreadyExists):
			return Item{Key: key, Value: raw}, err
		}
		it, err := c.Get(ctx, key)
		switch {
		case err == nil:
			return it, nil
		case !errors.Is(err, ErrNotFound):
			return Item{}, err
		case race >= lostRaces:
			// The key keeps vanishing between our create and our read; hand
			// back what we computed rather than loop.
			return Item{Key: key, Value: raw}, nil
		}
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
