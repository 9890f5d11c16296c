// Package scsstore is an alexedwards/scs session store on quorumkv: a
// drop-in replacement for scs's redisstore. It implements scs.Store,
// scs.CtxStore, scs.IterableStore and scs.IterableCtxStore. Each session is
// one key, Prefix + token, whose TTL is the session's expiry as scs computes
// it (Lifetime, IdleTimeout): quorumkv removes it on every node when it
// expires, so no cleanup goroutine is needed.
//
//	sm := scs.New()
//	sm.Store = scsstore.New(kv) // kv is a *client.Client
package scsstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/sessions"
)

// Store keeps scs sessions in quorumkv. It is safe for concurrent use.
type Store struct {
	kv      *client.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the key prefix (default sessions.DefaultPrefix); give each
// application its own when several share a cluster.
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithTimeout bounds each operation of the context-free methods (Find,
// Commit, Delete, All), and of the Ctx methods when their context has no
// earlier deadline (default sessions.DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(s *Store) { s.timeout = d } }

// New returns a Store on kv.
func New(kv *client.Client, opts ...Option) *Store {
	s := &Store{kv: kv, prefix: sessions.DefaultPrefix, timeout: sessions.DefaultTimeout, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

// FindCtx returns the data of the session token; found is false when it
// does not exist or has expired.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	it, err := s.kv.Get(ctx, s.prefix+token)
	if errors.Is(err, client.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	b, err := sessions.Decode(it)
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// CommitCtx stores the session token with data b until expiry; a session
// whose expiry has passed is deleted instead.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	ttl, ok := sessions.TTL(expiry, s.now())
	if !ok {
		return s.DeleteCtx(ctx, token)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.kv.Put(ctx, s.prefix+token, sessions.Encode(b), client.TTL(ttl))
	return err
}

// DeleteCtx removes the session token; a missing one is not an error.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.kv.Delete(ctx, s.prefix+token)
	return err
}

// AllCtx returns every live session, by token.
func (s *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	all := map[string][]byte{}
	for it, err := range s.kv.List(ctx, client.ListQuery{Prefix: s.prefix, Values: true, PageSize: 1000}) {
		if err != nil {
			return nil, err
		}
		b, err := sessions.Decode(it)
		if err != nil {
			return nil, err
		}
		all[strings.TrimPrefix(it.Key, s.prefix)] = b
	}
	return all, nil
}

// Find is FindCtx with a background context (bounded by the timeout).
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit is CommitCtx with a background context (bounded by the timeout).
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete is DeleteCtx with a background context (bounded by the timeout).
func (s *Store) Delete(token string) error { return s.DeleteCtx(context.Background(), token) }

// All is AllCtx with a background context (bounded by the timeout).
func (s *Store) All() (map[string][]byte, error) { return s.AllCtx(context.Background()) }
