package httpapi

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/watch"
)

// fakeStore is an in-memory Store that records what the API passed it.
// Expiry is not enforced: tests inspect ExpiresAt, they do not wait for it.
type fakeStore struct {
	// now stamps ExpiresAt = now + ttl, as the leader would.
	now time.Time

	mu      sync.Mutex
	items   map[string]store.Item
	version uint64
	err     error // when set, every method returns it
	block   bool  // when set, every method waits for its context and returns ctx.Err()
	// waitIndex makes a read whose MinIndex is above version wait for its
	// context, as the store does, before failing with ErrIndexNotReached.
	waitIndex  bool
	quota      store.QuotaStatus // returned by Quota
	status     store.Status
	calls      int
	lastKey    string
	lastTTL    time.Duration
	lastLevel  store.ReadLevel
	lastValue  []byte
	lastHadDDL bool // the context passed had a deadline

	lastKeepTTL bool
	lastBy      int64
	lastOpts    store.WriteOptions
	lastRead    store.ReadOptions
	lastList    store.ListRequest
	info        store.ReadInfo // returned by every read
	dedup       map[string]dedupEntry
	backup      *fakeBackup      // the last one Backup returned (admin_test.go)
	members     []store.NodeInfo // membership routes (nodes_test.go)
	hub         *watch.Hub       // watch routes (watch_test.go)
	hubConfig   watch.Config
	lastTxn     store.TxnRequest
	txnErr      error // returned by Txn when set (txn_test.go)
}

type dedupEntry struct {
	fp  [32]byte
	res any
	err error
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		now:   time.Date(2026, 11, 26, 7, 29, 59, 623_456_789, time.FixedZone("CET", 3600)),
		items: make(map[string]store.Item),
		dedup: make(map[string]dedupEntry),
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

func (f *fakeStore) Read(ctx context.Context, key string, opts store.ReadOptions) (store.Item, store.ReadInfo, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.Item{}, store.ReadInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLevel = opts.Level
	f.lastRead = opts
	if opts.MinIndex > f.version {
		if f.waitIndex {
			f.mu.Unlock()
			<-ctx.Done()
			f.mu.Lock()
		}
		return store.Item{}, f.info, store.ErrIndexNotReached
	}
	it, ok := f.items[key]
	if !ok {
		return store.Item{}, f.info, store.ErrNotFound
	}
	return it, f.info, nil
}

func (f *fakeStore) List(ctx context.Context, req store.ListRequest) (store.ListResult, store.ReadInfo, error) {
	if err := f.enter(ctx, req.Prefix); err != nil {
		return store.ListResult{}, store.ReadInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastList = req
	f.lastLevel = req.Level
	var keys []string
	for k := range f.items {
		if strings.HasPrefix(k, req.Prefix) && k > req.After {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var res store.ListResult
	for _, k := range keys {
		if len(res.Items) == req.Limit {
			res.More = true
			break
		}
		res.Items = append(res.Items, f.items[k])
	}
	return res, f.info, nil
}

// idem answers a write from the dedup table, if its key is recorded.
func (f *fakeStore) idem(opts store.WriteOptions) (any, error, bool) {
	if opts.IdempotencyKey == "" {
		return nil, nil, false
	}
	r, ok := f.dedup[opts.IdempotencyScope+"\x00"+opts.IdempotencyKey]
	if !ok {
		return nil, nil, false
	}
	if r.fp != opts.Fingerprint {
		return nil, store.ErrIdempotencyKeyReused, true
	}
	return r.res, r.err, true
}

func (f *fakeStore) record(opts store.WriteOptions, res any, err error) {
	if opts.IdempotencyKey != "" {
		f.dedup[opts.IdempotencyScope+"\x00"+opts.IdempotencyKey] = dedupEntry{opts.Fingerprint, res, err}
	}
}

// check evaluates the conditions in opts against key.
func (f *fakeStore) check(key string, opts store.WriteOptions) (store.Item, bool, error) {
	it, live := f.items[key]
	switch {
	case opts.IfMatch != nil && (!live || it.Version != *opts.IfMatch):
		return it, live, &store.ConditionError{Err: store.ErrVersionMismatch, CurrentVersion: it.Version}
	case opts.IfAbsent && live:
		return it, live, &store.ConditionError{Err: store.ErrAlreadyExists, CurrentVersion: it.Version}
	}
	return it, live, nil
}

func (f *fakeStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration, keepTTL bool, opts store.WriteOptions) (store.SetResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.SetResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTTL, f.lastKeepTTL, f.lastOpts = ttl, keepTTL, opts
	f.lastValue = append([]byte(nil), value...)
	if res, err, ok := f.idem(opts); ok {
		r, _ := res.(store.SetResult)
		return r, err
	}
	old, existed, err := f.check(key, opts)
	if err != nil {
		f.record(opts, store.SetResult{}, err)
		return store.SetResult{}, err
	}
	f.version++
	it := store.Item{Key: key, Value: f.lastValue, Version: f.version}
	if ttl > 0 {
		it.ExpiresAt = f.now.Add(ttl)
	}
	if keepTTL {
		it.ExpiresAt = old.ExpiresAt
	}
	f.items[key] = it
	res := store.SetResult{Created: !existed, Version: it.Version, ExpiresAt: it.ExpiresAt, Index: f.version}
	f.record(opts, res, nil)
	return res, nil
}

func (f *fakeStore) DeleteIf(ctx context.Context, key string, opts store.WriteOptions) (store.DeleteResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.DeleteResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastOpts = opts
	if res, err, ok := f.idem(opts); ok {
		r, _ := res.(store.DeleteResult)
		return r, err
	}
	_, existed, err := f.check(key, opts)
	if err != nil {
		f.record(opts, store.DeleteResult{}, err)
		return store.DeleteResult{}, err
	}
	delete(f.items, key)
	f.version++
	res := store.DeleteResult{Deleted: existed, Index: f.version}
	f.record(opts, res, nil)
	return res, nil
}

func (f *fakeStore) Touch(ctx context.Context, key string, ttl time.Duration, opts store.WriteOptions) (store.SetResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.SetResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTTL, f.lastOpts = ttl, opts
	it, ok := f.items[key]
	if !ok {
		return store.SetResult{}, store.ErrNotFound
	}
	if _, _, err := f.check(key, opts); err != nil {
		return store.SetResult{}, err
	}
	f.version++
	it.Version, it.ExpiresAt = f.version, time.Time{}
	if ttl > 0 {
		it.ExpiresAt = f.now.Add(ttl)
	}
	f.items[key] = it
	return store.SetResult{Version: it.Version, ExpiresAt: it.ExpiresAt, Index: f.version}, nil
}

func (f *fakeStore) Incr(ctx context.Context, key string, by int64, ttl time.Duration, opts store.WriteOptions) (store.IncrResult, error) {
	if err := f.enter(ctx, key); err != nil {
		return store.IncrResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTTL, f.lastBy, f.lastOpts = ttl, by, opts
	if res, err, ok := f.idem(opts); ok {
		r, _ := res.(store.IncrResult)
		return r, err
	}
	it, live, err := f.check(key, opts)
	if err != nil {
		return store.IncrResult{}, err
	}
	n := by
	if live {
		old, perr := strconv.ParseInt(string(it.Value), 10, 64)
		if perr != nil {
			return store.IncrResult{}, &store.ConditionError{Err: store.ErrNotAnInteger, CurrentVersion: it.Version}
		}
		n = old + by
		if (by > 0 && n < old) || (by < 0 && n > old) {
			return store.IncrResult{}, &store.ConditionError{Err: store.ErrOverflow, CurrentVersion: it.Version}
		}
	} else if ttl > 0 {
		it.ExpiresAt = f.now.Add(ttl)
	}
	f.version++
	it.Key, it.Value, it.Version = key, []byte(strconv.FormatInt(n, 10)), f.version
	f.items[key] = it
	res := store.IncrResult{Created: !live, Value: n, Version: it.Version, ExpiresAt: it.ExpiresAt, Index: f.version}
	f.record(opts, res, nil)
	return res, nil
}

func (f *fakeStore) DeletePrefix(ctx context.Context, prefix string, opts store.WriteOptions) (store.DeletePrefixResult, error) {
	if err := f.enter(ctx, prefix); err != nil {
		return store.DeletePrefixResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastOpts = opts
	if res, err, ok := f.idem(opts); ok {
		r, _ := res.(store.DeletePrefixResult)
		return r, err
	}
	n := 0
	for k := range f.items {
		if strings.HasPrefix(k, prefix) {
			delete(f.items, k)
			n++
		}
	}
	f.version++
	res := store.DeletePrefixResult{Deleted: n, Index: f.version}
	f.record(opts, res, nil)
	return res, nil
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

func (f *fakeStore) Quota() store.QuotaStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.quota
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

// Watch subscribes to the fake's hub, which tests feed with Applied. A watch
// without a start index starts at the hub's applied index.
func (f *fakeStore) Watch(ctx context.Context, req store.WatchRequest) (*watch.Watcher, error) {
	if err := f.enter(ctx, req.Prefix); err != nil {
		return nil, err
	}
	h := f.watchHub()
	from := h.AppliedIndex()
	if req.HasFrom {
		from = req.From
	}
	return h.Subscribe(req.Prefix, from)
}

// watchHub returns the fake's change hub, created on first use.
func (f *fakeStore) watchHub() *watch.Hub {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hub == nil {
		f.hub, _ = watch.New(f.hubConfig)
	}
	return f.hub
}

// Txn records the request and answers every operation as applied at the
// next version (gets find nothing), or fails with txnErr.
func (f *fakeStore) Txn(ctx context.Context, req store.TxnRequest, opts store.WriteOptions) (store.TxnResult, error) {
	if err := f.enter(ctx, ""); err != nil {
		return store.TxnResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTxn, f.lastOpts = req, opts
	if f.txnErr != nil {
		return store.TxnResult{}, f.txnErr
	}
	f.version++
	res := store.TxnResult{Index: f.version}
	for _, op := range req.Ops {
		o := store.TxnOpResult{Kind: op.Kind, Key: op.Key}
		if op.Kind != store.TxnGet && op.Kind != store.TxnDelete {
			o.Version = f.version
		}
		if op.TTL > 0 {
			o.ExpiresAt = f.now.Add(op.TTL)
		}
		o.Int = op.By
		res.Results = append(res.Results, o)
	}
	return res, nil
}
