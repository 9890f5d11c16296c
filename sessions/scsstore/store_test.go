package scsstore_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
	"github.com/quorumkv/quorumkv/sessions/scsstore"
)

func newStore(t *testing.T) (*scsstore.Store, *client.Client) {
	srv := httptest.NewServer(kvfake.New().Handler(nil))
	t.Cleanup(srv.Close)
	kv, err := client.New(client.Config{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	return scsstore.New(kv, scsstore.WithPrefix("s/")), kv
}

func TestCommitFindDeleteAll(t *testing.T) {
	s, kv := newStore(t)
	data := []byte{0, 1, 2, 0xff, '"'}
	if err := s.Commit("tok", data, time.Now().Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	it, err := kv.Get(context.Background(), "s/tok")
	if err != nil || it.ExpiresAt.IsZero() || time.Until(it.ExpiresAt) > 91*time.Second || time.Until(it.ExpiresAt) < 80*time.Second {
		t.Fatalf("stored item %+v %v: the TTL must be the session's expiry", it, err)
	}
	b, found, err := s.Find("tok")
	if err != nil || !found || !bytes.Equal(b, data) {
		t.Fatalf("Find: %v %v %v", b, found, err)
	}
	all, err := s.All()
	if err != nil || len(all) != 1 || !bytes.Equal(all["tok"], data) {
		t.Fatalf("All: %v %v", all, err)
	}
	if err := s.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find("tok"); found || err != nil {
		t.Fatalf("after Delete: found %v, %v", found, err)
	}
	if err := s.Delete("tok"); err != nil {
		t.Fatalf("deleting a missing session: %v", err)
	}
	// An expiry in the past deletes rather than writes.
	s.Commit("old", data, time.Now().Add(time.Hour))
	if err := s.Commit("old", data, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("old"); found {
		t.Fatal("a session committed with a past expiry is still there")
	}
	// Something that is not session data is an error, not a session.
	kv.Put(context.Background(), "s/bad", map[string]int{"x": 1})
	if _, _, err := s.Find("bad"); err == nil {
		t.Fatal("a non-session value was accepted")
	}
}
