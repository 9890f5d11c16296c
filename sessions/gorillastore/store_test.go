package gorillastore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
	"github.com/quorumkv/quorumkv/sessions/gorillastore"
)

func TestSaveLoadAndLogout(t *testing.T) {
	srv := httptest.NewServer(kvfake.New().Handler(nil))
	t.Cleanup(srv.Close)
	kv, err := client.New(client.Config{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	store := gorillastore.New(kv, []byte("0123456789abcdef0123456789abcdef"))
	store.MaxAge(600)

	// Save a new session: a cookie with the id, the values in the cluster.
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	s, err := store.Get(r, "app")
	if err != nil || !s.IsNew {
		t.Fatalf("first Get: %+v %v", s, err)
	}
	s.Values["user"] = "alice"
	s.Values[42] = []string{"a", "b"}
	if err := s.Save(r, w); err != nil {
		t.Fatal(err)
	}
	cookie := w.Result().Cookies()[0]
	it, err := kv.Get(context.Background(), "session/"+s.ID)
	if err != nil || time.Until(it.ExpiresAt) > 601*time.Second || time.Until(it.ExpiresAt) < 590*time.Second {
		t.Fatalf("stored %+v %v: the TTL must be MaxAge", it, err)
	}

	// The cookie brings it back.
	r2 := httptest.NewRequest("GET", "/", nil)
	r2.AddCookie(cookie)
	s2, err := store.Get(r2, "app")
	if err != nil || s2.IsNew || s2.ID != s.ID || s2.Values["user"] != "alice" || len(s2.Values[42].([]string)) != 2 {
		t.Fatalf("loaded %+v %v", s2, err)
	}

	// A forged cookie gives a new session with a fresh id.
	r3 := httptest.NewRequest("GET", "/", nil)
	r3.AddCookie(&http.Cookie{Name: "app", Value: cookie.Value[:len(cookie.Value)-4] + "AAAA"})
	if s3, err := store.New(r3, "app"); err != nil || !s3.IsNew || s3.ID != "" {
		t.Fatalf("forged cookie: %+v %v", s3, err)
	}

	// Logout: MaxAge -1 deletes the session and expires the cookie.
	s2.Options.MaxAge = -1
	w2 := httptest.NewRecorder()
	if err := store.Save(r2, w2, s2); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), "session/"+s.ID); err == nil {
		t.Fatal("the session is still stored after logout")
	}
	if c := w2.Result().Cookies()[0]; c.MaxAge >= 0 {
		t.Fatalf("logout cookie %+v does not expire", c)
	}
	// The old cookie now finds nothing: a new session, not the old id.
	r4 := httptest.NewRequest("GET", "/", nil)
	r4.AddCookie(cookie)
	if s4, err := store.New(r4, "app"); err != nil || !s4.IsNew || s4.ID != "" || len(s4.Values) != 0 {
		t.Fatalf("after logout: %+v %v", s4, err)
	}
}
