// Package gorillastore is a gorilla/sessions store on quorumkv: a drop-in
// replacement for the Redis stores of that ecosystem. The cookie carries
// only the session id, signed (and, with a second key, encrypted) by
// securecookie; the values live server side at Prefix + id, gob-encoded,
// with a TTL of the session's Options.MaxAge, so quorumkv removes an expired
// session on every node by itself. Saving a session with MaxAge ≤ 0 deletes
// it (logout) and expires the cookie.
//
//	store := gorillastore.New(kv, []byte(hashKey32), []byte(blockKey32))
//	sess, _ := store.Get(r, "app")
//	sess.Values["user"] = "alice"
//	_ = sess.Save(r, w)
//
// Values of custom types must be registered with gob.Register, as with every
// gob-encoding gorilla store.
package gorillastore

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/gob"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	gsessions "github.com/gorilla/sessions"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/sessions"
)

// Store keeps gorilla sessions in quorumkv. It is safe for concurrent use.
type Store struct {
	// Codecs sign (and encrypt) the cookie holding the session id.
	Codecs []securecookie.Codec
	// Options are the defaults of new sessions: cookie attributes and MaxAge,
	// which is also the TTL of the stored session.
	Options *gsessions.Options
	// Prefix is prepended to the session id to form the key.
	Prefix string
	// Timeout bounds one operation on the cluster when the request's context
	// has no earlier deadline.
	Timeout time.Duration

	kv *client.Client
}

// New returns a Store on kv whose cookies are protected by keyPairs, as in
// gorilla's NewCookieStore: a 32- or 64-byte hash key to sign, optionally
// followed by a 16-, 24- or 32-byte block key to encrypt, per key
// generation (older pairs after the current one, for rotation). Sessions
// last 30 days by default (Options.MaxAge, or MaxAge for all codecs too).
func New(kv *client.Client, keyPairs ...[]byte) *Store {
	s := &Store{
		Codecs:  securecookie.CodecsFromPairs(keyPairs...),
		Options: &gsessions.Options{Path: "/", MaxAge: 86400 * 30, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		Prefix:  sessions.DefaultPrefix,
		Timeout: sessions.DefaultTimeout,
		kv:      kv,
	}
	s.MaxAge(s.Options.MaxAge)
	return s
}

// MaxAge sets the default lifetime of sessions, in seconds, for the stored
// values and the cookies alike (and the codecs' timestamp check).
func (s *Store) MaxAge(age int) {
	s.Options.MaxAge = age
	for _, c := range s.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.MaxAge(age)
		}
	}
}

// Get returns the session called name for r, from the request's registry
// (so every Get in one request sees the same session) or loaded by New.
func (s *Store) Get(r *http.Request, name string) (*gsessions.Session, error) {
	return gsessions.GetRegistry(r).Get(s, name)
}

// New returns the session called name for r, loaded from the cluster when
// r carries a valid cookie for a live session; otherwise a new, empty
// session (IsNew). An expired or deleted session, or a cookie that does not
// verify, gives a new session with a fresh id, never the old one. The error
// is that of a cluster that could not be read (the session is then new).
func (s *Store) New(r *http.Request, name string) (*gsessions.Session, error) {
	sess := gsessions.NewSession(s, name)
	opts := *s.Options
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil // no cookie: a new session
	}
	var id string
	if err := securecookie.DecodeMulti(name, c.Value, &id, s.Codecs...); err != nil {
		return sess, nil // forged, expired or from older keys: a new session
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Timeout)
	defer cancel()
	it, err := s.kv.Get(ctx, s.Prefix+id)
	switch {
	case errors.Is(err, client.ErrNotFound):
		return sess, nil
	case err != nil:
		return sess, fmt.Errorf("gorillastore: loading session %q: %w", name, err)
	}
	b, err := sessions.Decode(it)
	if err == nil {
		err = gob.NewDecoder(bytes.NewReader(b)).Decode(&sess.Values)
	}
	if err != nil {
		return sess, fmt.Errorf("gorillastore: session %q holds undecodable values (a type not registered with gob?): %w", name, err)
	}
	sess.ID, sess.IsNew = id, false
	return sess, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Save stores sess for Options.MaxAge seconds and sets its cookie; with
// MaxAge ≤ 0 it deletes the session from the cluster and expires the
// cookie.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, sess *gsessions.Session) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.Timeout)
	defer cancel()
	if sess.Options.MaxAge <= 0 {
		if sess.ID != "" {
			if _, err := s.kv.Delete(ctx, s.Prefix+sess.ID); err != nil {
				return fmt.Errorf("gorillastore: deleting session %q: %w", sess.Name(), err)
			}
		}
		http.SetCookie(w, gsessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		sess.ID = idEncoding.EncodeToString(securecookie.GenerateRandomKey(32))
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(sess.Values); err != nil {
		return fmt.Errorf("gorillastore: encoding session %q (register custom types with gob.Register): %w", sess.Name(), err)
	}
	ttl := time.Duration(sess.Options.MaxAge) * time.Second
	if _, err := s.kv.Put(ctx, s.Prefix+sess.ID, sessions.Encode(buf.Bytes()), client.TTL(ttl)); err != nil {
		return fmt.Errorf("gorillastore: saving session %q: %w", sess.Name(), err)
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), sess.ID, s.Codecs...)
	if err != nil {
		return fmt.Errorf("gorillastore: encoding the cookie of session %q: %w", sess.Name(), err)
	}
	http.SetCookie(w, gsessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}
