package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CacheConfig configures a near cache. Only Prefix may be left empty.
type CacheConfig struct {
	// Prefix: the keys the cache serves (every key starting with it; "" for
	// all). Get of a key outside it is an ErrInvalidOption.
	Prefix string
	// MaxStaleness bounds how old a cached answer may be (see Cache). 0
	// means 1 s. The cache confirms its freshness with the cluster about
	// four times per MaxStaleness (one linearizable read each).
	MaxStaleness time.Duration
	// MaxEntries bounds the keys held (present or known absent); beyond it
	// arbitrary entries are dropped and read again when asked for. 0 means
	// 100,000.
	MaxEntries int
	// Clock is the local clock that judges freshness and TTLs; nil means
	// time.Now.
	Clock func() time.Time
}

// Cache is a near cache of one prefix, kept exact by a watch of that prefix.
//
// Guarantee. Get answers from local memory (a hit) only while the cache is
// confirmed fresh: within the last MaxStaleness, by the local clock, it
// learned a linearizable index L from the cluster and has applied the watch
// up to L. A hit then returns the key's value (or absence) at one log index
// that includes every write the cluster acknowledged before now −
// MaxStaleness and every write made through this Cache (read-your-writes),
// and never a write that was not committed. For one key, answers never go
// back in log order: each (hit or cluster read) is at least as new as every
// earlier answer of this Cache for that key and every write made to it
// through this Cache (monotonic reads and read-your-writes). A TTL is judged by the local clock: a key whose expiry has
// passed locally is absent even before the cluster's expire event arrives
// (a clock ahead of the cluster's hides it early). Every other Get (a key
// not held yet, the watch lagging or broken, freshness not confirmed in
// time) is an ordinary linearizable read of the cluster. On a reset (an
// online restore) or a compacted watch the cache empties itself and starts
// again. Writes through the cache (Put, Delete) go to the cluster first.
//
// A Cache holds two goroutines (the watch and the freshness probe); Close
// stops them. Safe for concurrent use.
type Cache struct {
	c     *Client
	cfg   CacheConfig
	now   func() time.Time
	stop  context.CancelFunc
	wg    sync.WaitGroup
	stats struct{ hits, misses, fallbacks, resyncs atomic.Uint64 }

	mu      sync.Mutex
	entries map[string]*cacheEntry
	fills   map[string]*cacheFill
	pos     uint64 // the watch has applied every change up to here
	// floor is the highest log index an answer or a write of this cache
	// reflected; a hit needs pos >= floor, so answers never go back.
	floor   uint64
	healthy bool // the watch is running and has reported its position
	// probes waiting for pos to reach their index; confirmed is the start
	// time of the newest probe whose index pos has reached.
	probes    []cacheProbe
	confirmed time.Time
	advanced  chan struct{} // closed and replaced when pos advances
}

type cacheEntry struct {
	present   bool
	value     json.RawMessage
	version   uint64
	expiresAt time.Time
	asOf      uint64 // the entry is the key's state at this index
}

// cacheFill records the changes to a key seen while it is read from the
// cluster (see fill).
type cacheFill struct {
	events  []Event
	invalid bool // a reset came: do not insert
}

type cacheProbe struct {
	index uint64
	at    time.Time
}

// CacheStats counts a cache's answers.
type CacheStats struct {
	Hits, Misses, Fallbacks, Resyncs uint64
}

// NewCache starts a near cache over c. It returns at once; until the watch
// has caught up, Get reads the cluster.
func NewCache(c *Client, cfg CacheConfig) (*Cache, error) {
	if cfg.MaxStaleness < 0 || cfg.MaxEntries < 0 {
		return nil, fmt.Errorf("client: NewCache: MaxStaleness and MaxEntries must not be negative: %w", ErrInvalidOption)
	}
	if cfg.MaxStaleness == 0 {
		cfg.MaxStaleness = time.Second
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 100_000
	}
	k := &Cache{c: c, cfg: cfg, now: cfg.Clock, entries: map[string]*cacheEntry{}, fills: map[string]*cacheFill{}, advanced: make(chan struct{})}
	if k.now == nil {
		k.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop = cancel
	k.wg.Add(2)
	go k.watchLoop(ctx)
	go k.probeLoop(ctx)
	return k, nil
}

// Close stops the cache's goroutines. Get and the writes keep working,
// reading the cluster.
func (k *Cache) Close() {
	k.stop()
	k.wg.Wait()
	k.mu.Lock()
	k.healthy = false
	k.mu.Unlock()
}

// Stats returns the cache's counters.
func (k *Cache) Stats() CacheStats {
	return CacheStats{Hits: k.stats.hits.Load(), Misses: k.stats.misses.Load(), Fallbacks: k.stats.fallbacks.Load(), Resyncs: k.stats.resyncs.Load()}
}

// Fresh reports whether hits are allowed now (see Cache).
func (k *Cache) Fresh() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.freshLocked()
}

func (k *Cache) freshLocked() bool {
	return k.healthy && !k.confirmed.IsZero() && k.now().Sub(k.confirmed) <= k.cfg.MaxStaleness
}

// Get returns key's item, from memory when the cache is fresh and holds the
// key, from the cluster otherwise (see Cache for the guarantee). A missing
// or expired key is ErrNotFound.
func (k *Cache) Get(ctx context.Context, key string) (Item, error) {
	if !strings.HasPrefix(key, k.cfg.Prefix) {
		return Item{}, fmt.Errorf("client: Cache.Get(%q): the key is outside the cached prefix %q: %w", key, k.cfg.Prefix, ErrInvalidOption)
	}
	k.mu.Lock()
	if k.freshLocked() && k.pos < k.floor {
		floor := k.floor
		k.mu.Unlock()
		k.waitPos(ctx, floor) // the watch is usually milliseconds behind
		k.mu.Lock()
	}
	if !k.freshLocked() || k.pos < k.floor {
		k.mu.Unlock()
		k.stats.fallbacks.Add(1)
		it, err := k.c.Get(ctx, key)
		k.observed(it, err)
		return it, err
	}
	if e, ok := k.entries[key]; ok {
		it, err := e.answer(key, k.now())
		k.mu.Unlock()
		k.stats.hits.Add(1)
		return it, err
	}
	k.mu.Unlock()
	k.stats.misses.Add(1)
	return k.fill(ctx, key)
}

func (e *cacheEntry) answer(key string, now time.Time) (Item, error) {
	if !e.present || (!e.expiresAt.IsZero() && !now.Before(e.expiresAt)) {
		return Item{}, &APIError{Status: http.StatusNotFound, Code: "not_found", Endpoint: "cache",
			Message: "No item exists at this key (from the near cache)."}
	}
	it := Item{Key: key, Value: append(json.RawMessage(nil), e.value...), Version: e.version, ExpiresAt: e.expiresAt, Index: e.asOf}
	if !e.expiresAt.IsZero() {
		it.TTLRemaining = e.expiresAt.Sub(now)
	}
	return it, nil
}

// fill reads key from the cluster (linearizably) and keeps a present
// answer. The answer's version v is exact: no change to the key lies between
// v and the state it was read from, so the entry is the key's state as of v,
// and the changes with an index above v that the watch applied while the
// read was in flight (recorded from before the read began) are applied to
// it. An absent answer is not kept: when the key became absent is not known
// (a read's X-KV-Index is a lower bound of the state it was served from),
// so older changes still on their way could briefly resurrect it.
func (k *Cache) fill(ctx context.Context, key string) (Item, error) {
	k.mu.Lock()
	f, filling := k.fills[key]
	if !filling {
		f = &cacheFill{}
		k.fills[key] = f
	}
	k.mu.Unlock()
	it, err := k.c.Get(ctx, key)
	k.observed(it, err)
	if filling { // another Get is filling this key: just answer
		return it, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.fills, key)
	if err != nil || f.invalid {
		return it, err
	}
	e := &cacheEntry{present: true, value: it.Value, version: it.Version, expiresAt: it.ExpiresAt, asOf: it.Version}
	for _, ev := range f.events {
		if ev.Index > e.asOf {
			e.apply(ev)
		}
	}
	if cur, ok := k.entries[key]; ok && cur.asOf >= e.asOf {
		return it, err // this cache's own write got there first, and is newer
	}
	k.insertLocked(key, e)
	return it, err
}

// observed raises the floor to the index a cluster read was served at.
func (k *Cache) observed(it Item, err error) {
	idx := max(it.Index, it.Version)
	var ae *APIError
	if errors.As(err, &ae) {
		idx = ae.Index
	}
	k.mu.Lock()
	k.floor = max(k.floor, idx)
	k.mu.Unlock()
}

// waitPos waits until the watch has applied index, for at most MaxStaleness.
func (k *Cache) waitPos(ctx context.Context, index uint64) bool {
	t := time.NewTimer(k.cfg.MaxStaleness)
	defer t.Stop()
	for {
		k.mu.Lock()
		ok, healthy, ch := k.pos >= index, k.healthy, k.advanced
		k.mu.Unlock()
		if ok || !healthy {
			return ok
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (k *Cache) insertLocked(key string, e *cacheEntry) {
	if _, ok := k.entries[key]; !ok && len(k.entries) >= k.cfg.MaxEntries {
		for victim := range k.entries { // an arbitrary entry: it is read again when asked for
			delete(k.entries, victim)
			break
		}
	}
	k.entries[key] = e
}

func (e *cacheEntry) apply(ev Event) {
	e.asOf = ev.Index
	switch ev.Type {
	case EventSet:
		e.present, e.value, e.version, e.expiresAt = true, ev.Value, ev.Version, ev.ExpiresAt
	case EventDelete, EventExpire:
		e.present, e.value, e.version, e.expiresAt = false, nil, 0, time.Time{}
	}
}

// Put writes through to the cluster (as Client.Put) and keeps the written
// value, so that this cache's next Get sees it.
func (k *Cache) Put(ctx context.Context, key string, value any, opts ...Option) (WriteResult, error) {
	raw, err := encodeValue(value)
	if err != nil {
		return WriteResult{}, err
	}
	res, err := k.c.Put(ctx, key, json.RawMessage(raw), opts...)
	if err == nil && strings.HasPrefix(key, k.cfg.Prefix) {
		k.wrote(key, &cacheEntry{present: true, value: raw, version: res.Version, expiresAt: res.ExpiresAt, asOf: res.Index})
	}
	return res, err
}

// Delete deletes through to the cluster (as Client.Delete) and records the
// absence, so that this cache's next Get sees it.
func (k *Cache) Delete(ctx context.Context, key string, opts ...Option) (bool, error) {
	o, err := collect("Delete", optIfMatch|optIdempotencyKey, opts)
	if err != nil {
		return false, err
	}
	if err := checkKey("Delete", key); err != nil {
		return false, err
	}
	res, err := k.c.do(ctx, &call{method: http.MethodDelete, path: itemPath(key), header: writeHeader(o), replayable: true})
	if err != nil {
		return false, err
	}
	var d struct {
		Deleted bool `json:"deleted"`
	}
	if err := decodeData(res, &d); err != nil {
		return false, err
	}
	if idx := indexOf(res.header); idx != 0 && strings.HasPrefix(key, k.cfg.Prefix) {
		k.wrote(key, &cacheEntry{asOf: idx})
	}
	return d.Deleted, nil
}

// wrote records this cache's own write at e.asOf. It replaces a held entry
// that is older; with no entry, it is kept only if the watch has not yet
// passed the write (otherwise changes to the key after it may already have
// gone by unrecorded, and the next Get reads the cluster).
func (k *Cache) wrote(key string, e *cacheEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.floor = max(k.floor, e.asOf)
	cur, ok := k.entries[key]
	switch {
	case ok && cur.asOf < e.asOf:
		k.entries[key] = e
	case !ok && k.healthy && k.pos < e.asOf:
		k.insertLocked(key, e)
	}
}

// watchLoop runs the watch, restarting it from scratch (empty cache) after
// a reset, a compacted history or a watch that gave up.
func (k *Cache) watchLoop(ctx context.Context) {
	defer k.wg.Done()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			k.stats.resyncs.Add(1)
			if sleepCtx(ctx, k.c.backoff(min(attempt, 6))) != nil {
				return
			}
		}
		for ev, err := range k.c.Watch(ctx, k.cfg.Prefix, WatchOptions{Progress: true, IdleTimeout: max(2*k.cfg.MaxStaleness, 10*time.Second)}) {
			if err != nil || ev.Type == EventReset {
				break
			}
			k.applyEvent(ev)
			attempt = 0
		}
		k.resetLocked()
	}
}

func (k *Cache) applyEvent(ev Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ev.Type != EventProgress {
		if e, ok := k.entries[ev.Key]; ok && ev.Index > e.asOf {
			e.apply(ev)
		}
		if f, ok := k.fills[ev.Key]; ok {
			f.events = append(f.events, ev)
		}
	}
	k.healthy = true
	if ev.Index > k.pos {
		k.pos = ev.Index
		close(k.advanced)
		k.advanced = make(chan struct{})
	}
	kept := k.probes[:0]
	for _, p := range k.probes {
		if p.index <= k.pos {
			if p.at.After(k.confirmed) {
				k.confirmed = p.at
			}
			continue
		}
		kept = append(kept, p)
	}
	k.probes = kept
}

// resetLocked empties the cache: the watch stopped or the data was replaced.
func (k *Cache) resetLocked() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.entries = map[string]*cacheEntry{}
	for _, f := range k.fills {
		f.invalid = true
	}
	k.healthy, k.pos, k.probes, k.confirmed = false, 0, nil, time.Time{}
	close(k.advanced)
	k.advanced = make(chan struct{})
}

// probeLoop learns a linearizable index from the cluster about four times
// per MaxStaleness; the watch confirms freshness once it reaches it.
func (k *Cache) probeLoop(ctx context.Context) {
	defer k.wg.Done()
	every := max(k.cfg.MaxStaleness/4, 5*time.Millisecond)
	q := url.Values{"limit": {"1"}}
	if k.cfg.Prefix != "" {
		q.Set("prefix", k.cfg.Prefix)
	}
	for ctx.Err() == nil {
		at := k.now()
		pctx, cancel := context.WithTimeout(ctx, k.cfg.MaxStaleness)
		res, err := k.c.do(pctx, &call{method: http.MethodGet, path: "/kv/items", query: q, replayable: true})
		cancel()
		if err == nil {
			if idx := indexOf(res.header); idx != 0 {
				k.mu.Lock()
				if idx <= k.pos && k.healthy {
					if at.After(k.confirmed) {
						k.confirmed = at
					}
				} else {
					k.probes = append(k.probes, cacheProbe{index: idx, at: at})
					if len(k.probes) > 64 {
						k.probes = k.probes[len(k.probes)-64:]
					}
				}
				k.mu.Unlock()
			}
		}
		if sleepCtx(ctx, every) != nil {
			return
		}
	}
}
