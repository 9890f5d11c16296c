package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// fakeStore is an in-memory Store that records what the API passed it.
// Expiry is not enforced: tests inspect ExpiresAt, they do not wait for it.
type fakeStore struct {
	// now stamps ExpiresAt = now + ttl, as the leader would.
	now time.Time

	mu         sync.Mutex
	items      map[string]store.Item
	version    uint64
	err        error // when set, every method returns it
	block      bool  // when set, every method waits for its context and returns ctx.Err()
	status     store.Status
	calls      int
	lastKey    string
	lastTTL    time.Duration
	lastLevel  store.ReadLevel
	lastValue  []byte
	lastHadDDL bool // the context passed had a deadline
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		now:   time.Date(2026, 11, 26, 7, 29, 59, 623_456_789, time.FixedZone("CET", 3600)),
		items: make(map[string]store.Item),
	}
}

// enter records a call and returns the error to fail it with, if any.
func (f *fakeStore) enter(ctx context.Context, key string) error {
	f.mu.Lock()
	f.calls++
	f.lastKey = key
	_, f.lastHadDDL = ctx.Deadline()
	err, block := f.err, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeStore) Get(ctx context.Context, key string, level store.ReadLevel) (store.Item, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.Item{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLevel = level
	it, ok := f.items[key]
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	return it, nil
}

func (f *fakeStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (store.SetResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.SetResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTTL = ttl
	f.lastValue = append([]byte(nil), value...)
	_, existed := f.items[key]
	f.version++
	it := store.Item{Key: key, Value: f.lastValue, Version: f.version}
	if ttl > 0 {
		it.ExpiresAt = f.now.Add(ttl)
	}
	f.items[key] = it
	return store.SetResult{Created: !existed, Version: it.Version, ExpiresAt: it.ExpiresAt}, nil
}

func (f *fakeStore) Delete(ctx context.Context, key string) (store.DeleteResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.DeleteResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, existed := f.items[key]
	delete(f.items, key)
	return store.DeleteResult{Deleted: existed}, nil
}

func (f *fakeStore) Status(ctx context.Context) (store.Status, error) {
	if err := f.enter(ctx, ""); err != nil {
		return store.Status{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeStore) Ready(ctx context.Context) error {
	return f.enter(ctx, "")
}

func (f *fakeStore) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeStore) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// last returns what the most recent Set received.
func (f *fakeStore) last() (key string, value []byte, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastKey, f.lastValue, f.lastTTL
}
