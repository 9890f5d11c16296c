package watch

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quorumkv/quorumkv/fsm"
)

// Config bounds a Hub. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// MaxEntries is the most changes the ring keeps.
	MaxEntries int
	// MaxBytes is the most bytes the ring's changes may account (key, value
	// and ChangeOverhead each); the oldest are evicted first.
	MaxBytes int64
	// MaxWatchers is the most concurrent watchers; Subscribe fails with
	// ErrOverloaded beyond it.
	MaxWatchers int
	// WatcherBuffer is how many changes (of any key) a watcher may be behind
	// the newest before it is closed with ErrLagged.
	WatcherBuffer int
}

// ChangeOverhead is what one change accounts in the ring besides its key and
// value: the Change struct and the ring slot.
const ChangeOverhead = 64

// DefaultConfig: 100,000 changes or 64 MiB of history, 2,048 watchers, each
// at most 20,000 changes behind.
func DefaultConfig() Config {
	return Config{MaxEntries: 100_000, MaxBytes: 64 << 20, MaxWatchers: 2048, WatcherBuffer: 20_000}
}

// Validate reports a negative or inconsistent bound.
func (c Config) Validate() error {
	switch {
	case c.MaxEntries < 0 || c.MaxBytes < 0 || c.MaxWatchers < 0 || c.WatcherBuffer < 0:
		return fmt.Errorf("watch: negative bound in %+v", c)
	case c.MaxEntries > 0 && c.WatcherBuffer > c.MaxEntries:
		return fmt.Errorf("watch: watcher buffer %d exceeds the history of %d changes", c.WatcherBuffer, c.MaxEntries)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxEntries == 0 {
		c.MaxEntries = d.MaxEntries
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxWatchers == 0 {
		c.MaxWatchers = d.MaxWatchers
	}
	if c.WatcherBuffer == 0 {
		c.WatcherBuffer = min(d.WatcherBuffer, c.MaxEntries)
	}
	return c
}

var (
	// ErrOverloaded: the node already serves Config.MaxWatchers watchers.
	ErrOverloaded = errors.New("watch: too many watchers on this node")
	// ErrLagged: the watcher fell further behind than its buffer allows (or
	// the ring evicted its next change); it may resume from Watcher.Through.
	ErrLagged = errors.New("watch: watcher fell too far behind and was closed")
	// ErrClosed: the hub was closed (the node is shutting down).
	ErrClosed = errors.New("watch: node is shutting down")
)

// CompactedError: a subscription asked for changes older than the ring
// holds. Oldest is the smallest fromIndex still served.
type CompactedError struct{ From, Oldest uint64 }

func (e *CompactedError) Error() string {
	return fmt.Sprintf("watch: changes after index %d are no longer held; the oldest index served is %d", e.From, e.Oldest)
}

// Stats are a hub's running totals, for metrics.
type Stats struct {
	Watchers      int    // open now
	EventsSent    uint64 // changes handed to watchers
	ClosedForLag  uint64 // watchers closed with ErrLagged
	Refused       uint64 // subscriptions refused with ErrOverloaded
	RingEntries   int    // changes held
	RingBytes     int64  // bytes accounted
	OldestIndex   uint64 // smallest fromIndex served
	AppliedIndex  uint64 // newest index the hub has seen
	RingEvictions uint64 // changes evicted
}

// Hub is one node's change history and watcher registry. Applied is called
// by the FSM goroutine; every other method is safe from any goroutine.
type Hub struct {
	cfg Config

	mu sync.RWMutex
	// ring holds changes with sequence numbers [lo, hi): the change with
	// sequence s is ring[s % len(ring)]. Sequence numbers only grow.
	ring   []fsm.Change
	lo, hi uint64
	bytes  int64
	// base: every change with index > base is in the ring (those at or below
	// it may have been evicted). last: the newest index applied.
	base, last uint64
	// wake is closed (and replaced) whenever last advances.
	wake   chan struct{}
	closed bool

	watchers     atomic.Int64
	eventsSent   atomic.Uint64
	closedForLag atomic.Uint64
	refused      atomic.Uint64
	evictions    uint64 // under mu
}

// New returns an empty hub. Install it with fsm.FSM.SetChangeObserver before
// the FSM applies anything, so that it sees every change after index 0.
func New(cfg Config) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Hub{cfg: cfg, ring: make([]fsm.Change, 0, min(cfg.MaxEntries, 1024)), wake: make(chan struct{})}, nil
}

func changeBytes(c *fsm.Change) int64 { return int64(len(c.Key)+len(c.Value)) + ChangeOverhead }

// Applied implements fsm.ChangeObserver: it appends the changes, evicting
// the oldest whole entries past the bounds, and wakes every waiting watcher.
// It never waits for a watcher.
func (h *Hub) Applied(changes []fsm.Change, index uint64) {
	h.mu.Lock()
	for i := range changes {
		h.push(changes[i])
	}
	if index > h.last {
		h.last = index
	}
	wake := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	close(wake)
}

// push appends c, growing the ring up to MaxEntries, then evicts from the
// front while a bound is exceeded. h.mu is held.
func (h *Hub) push(c fsm.Change) {
	n := uint64(len(h.ring))
	if h.hi-h.lo == n && len(h.ring) < h.cfg.MaxEntries {
		// Grow: unroll into a larger slice so that seq % len still indexes it.
		grown := make([]fsm.Change, min(max(2*len(h.ring), 1024), h.cfg.MaxEntries))
		for s := h.lo; s < h.hi; s++ {
			grown[s%uint64(len(grown))] = h.ring[s%n]
		}
		h.ring = grown
		n = uint64(len(grown))
	}
	if h.hi-h.lo == n {
		h.evictOne()
	}
	h.ring[h.hi%n] = c
	h.hi++
	h.bytes += changeBytes(&c)
	for h.bytes > h.cfg.MaxBytes && h.hi-h.lo > 1 {
		h.evictOne()
	}
}

// evictOne drops the oldest change. The evicted index becomes base: a
// watcher from an index below it could miss the rest of that entry.
func (h *Hub) evictOne() {
	i := h.lo % uint64(len(h.ring))
	c := &h.ring[i]
	h.bytes -= changeBytes(c)
	if c.Index > h.base {
		h.base = c.Index
	}
	*c = fsm.Change{}
	h.lo++
	h.evictions++
}

// Close wakes every watcher, which then fails with ErrClosed. The FSM goes
// on applying (the node closes its watches before raft stops): Applied
// keeps recording, and Subscribe fails with ErrClosed.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	wake := h.wake
	h.wake = make(chan struct{}) // Applied closes this one next
	h.mu.Unlock()
	close(wake)
}

// Stats returns the hub's running totals.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return Stats{
		Watchers: int(h.watchers.Load()), EventsSent: h.eventsSent.Load(), ClosedForLag: h.closedForLag.Load(),
		Refused: h.refused.Load(), RingEntries: int(h.hi - h.lo), RingBytes: h.bytes, OldestIndex: h.base,
		AppliedIndex: h.last, RingEvictions: h.evictions,
	}
}

// AppliedIndex is the newest index the hub has seen applied.
func (h *Hub) AppliedIndex() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.last
}

// Subscribe starts a watcher for keys starting with prefix ("" for all),
// that will deliver every change with index > from, in log order. It fails
// with ErrOverloaded when MaxWatchers are open, or with a *CompactedError when
// from is below the oldest index the ring still covers. A from beyond the
// newest applied index is allowed: the watcher delivers nothing until the log
// passes it. The caller must Close the watcher.
func (h *Hub) Subscribe(prefix string, from uint64) (*Watcher, error) {
	if n := h.watchers.Add(1); n > int64(h.cfg.MaxWatchers) {
		h.watchers.Add(-1)
		h.refused.Add(1)
		return nil, ErrOverloaded
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.watchers.Add(-1)
		return nil, ErrClosed
	}
	if from < h.base {
		h.watchers.Add(-1)
		return nil, &CompactedError{From: from, Oldest: h.base}
	}
	// The first change with index > from.
	n := int(h.hi - h.lo)
	k := sort.Search(n, func(i int) bool {
		return h.ring[(h.lo+uint64(i))%uint64(len(h.ring))].Index > from
	})
	through := from
	if h.last < through {
		through = h.last
	}
	pos := h.lo + uint64(k)
	return &Watcher{h: h, prefix: prefix, pos: pos, from: from, through: through, backlog: h.hi - pos}, nil
}

// Watcher is one subscription. Its methods are for one goroutine.
type Watcher struct {
	h      *Hub
	prefix string
	pos    uint64 // sequence number of the next change to consider
	// from: changes at or below it are skipped (a start beyond the ring's head).
	from uint64
	// through: every change with index <= through was delivered or did not
	// match; never in the middle of an entry.
	through uint64
	// backlog is how many changes were ahead of the watcher when Next last
	// looked: a watcher beyond its buffer is closed only if it is not
	// catching up, so a subscription from far back may drain its history.
	backlog uint64
	closed  bool
}

// Through is the index to resume from: every matching change with an index
// at or below it was delivered (or lies before the subscription's start).
func (w *Watcher) Through() uint64 { return max64(w.through, w.from) }

// Progress is the newest applied index up to which this watcher has seen
// every change: a progress notification never runs ahead of the stream.
func (w *Watcher) Progress() uint64 { return w.through }

// Close releases the watcher's slot. Idempotent.
func (w *Watcher) Close() {
	if !w.closed {
		w.closed = true
		w.h.watchers.Add(-1)
	}
}

// Next appends to buf the next matching changes (at most about max, always
// whole entries) and returns them, waiting until there is at least one or
// ctx is done (then it returns ctx's error with no changes; Through tells
// how far the watcher has got meanwhile). It fails with ErrLagged when the
// watcher fell behind its buffer, and ErrClosed when the hub closes.
func (w *Watcher) Next(ctx context.Context, buf []fsm.Change, max int) ([]fsm.Change, error) {
	h := w.h
	for {
		h.mu.RLock()
		if h.closed {
			h.mu.RUnlock()
			return buf, ErrClosed
		}
		backlog := h.hi - w.pos
		lagging := backlog > uint64(h.cfg.WatcherBuffer) && backlog > w.backlog
		w.backlog = backlog
		if w.pos < h.lo || lagging {
			h.mu.RUnlock()
			h.closedForLag.Add(1)
			return buf, ErrLagged
		}
		start := len(buf)
		n := uint64(len(h.ring))
		var lastIdx uint64
		done := true
		for ; w.pos < h.hi; w.pos++ {
			c := &h.ring[w.pos%n]
			if c.Index != lastIdx && len(buf)-start >= max {
				done = false // stop at an entry boundary
				break
			}
			lastIdx = c.Index
			if c.Index <= w.from {
				continue
			}
			if c.Type == fsm.ChangeReset || strings.HasPrefix(c.Key, w.prefix) {
				buf = append(buf, *c)
			}
		}
		switch {
		case !done:
			w.through = max64(w.through, lastIdx)
		case h.last > w.through:
			w.through = h.last
		}
		wake := h.wake
		h.mu.RUnlock()
		if got := len(buf) - start; got > 0 {
			h.eventsSent.Add(uint64(got))
			return buf, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
