package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/watch"
)

// collect reads w until want changes arrived (failing after the deadline).
func collect(t *testing.T, w *watch.Watcher, want int) []fsm.Change {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	var got []fsm.Change
	for len(got) < want {
		var err error
		if got, err = w.Next(ctx, got, 100); err != nil {
			t.Fatalf("after %d of %d changes: %v (got %s)", len(got), want, err, describe(got))
		}
	}
	return got
}

func describe(cs []fsm.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s %s@%d ", c.Type, c.Key, c.Index)
	}
	return b.String()
}

// TestWatchOnFollower: sets, a delete, a TTL expiry and a chunked prefix
// delete, written through the leader, arrive in log order on a follower
// watching the prefix, each at its write's index; a watch on another node
// resumed from the middle gets exactly the rest; an index older than the ring
// is refused as compacted; a stalled watcher is closed for lag while writes go on.
func TestWatchOnFollower(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.DeletePrefixChunk = 2
		cfg.Watch = watch.Config{MaxEntries: 100, WatcherBuffer: 50}
	})
	l := c.leader()
	fs := c.followers(l)
	f, g := fs[0].store, fs[1].store
	ctx := ctxTimeout(t, 30*time.Second)
	w, err := f.Watch(ctx, WatchRequest{Prefix: "a/"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stalled, err := g.Watch(ctx, WatchRequest{Prefix: "zz/", Level: Stale})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()

	var want []string
	put := func(key string, ttl time.Duration) {
		t.Helper()
		res, err := l.store.Set(ctx, key, []byte(`"v"`), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(key, "a/") {
			want = append(want, fmt.Sprintf("set %s@%d", key, res.Index))
		}
	}
	put("a/1", 0)
	put("a/2", 300*time.Millisecond)
	put("b/1", 0)
	del, err := l.store.Delete(ctx, "a/1")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("delete a/1@%d", del.Index))
	got := collect(t, w, 4) // a/2 expires on its own: its event comes next
	if got[3].Type != fsm.ChangeExpire || got[3].Key != "a/2" {
		t.Fatalf("fourth change %s, want the expiry of a/2", describe(got[3:]))
	}
	want = append(want, fmt.Sprintf("expire a/2@%d", got[3].Index))
	put("a/3", 0)
	put("a/4", 0)
	put("a/5", 0)
	dp, err := l.store.DeletePrefix(ctx, "a/", WriteOptions{})
	if err != nil || dp.Deleted != 3 {
		t.Fatalf("DeletePrefix: %+v, %v", dp, err)
	}
	got = append(got, collect(t, w, 6)...)
	var gotS []string
	for _, c := range got {
		gotS = append(gotS, fmt.Sprintf("%s %s@%d", c.Type, c.Key, c.Index))
	}
	// The bulk delete's three keys come in two chunks (DeletePrefixChunk 2).
	if got[7].Type != fsm.ChangeDelete || got[9].Type != fsm.ChangeDelete || got[7].Index != got[8].Index || got[9].Index <= got[8].Index {
		t.Fatalf("prefix delete changes: %s", describe(got[7:]))
	}
	if fmt.Sprint(gotS[:7]) != fmt.Sprint(want) {
		t.Fatalf("follower's changes:\n got  %v\n want %v", gotS[:7], want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Index < got[i-1].Index {
			t.Fatalf("out of log order: %s", describe(got))
		}
	}

	// Resume on the other follower from the middle: exactly the rest.
	mid := got[4].Index
	r, err := g.Watch(ctx, WatchRequest{Prefix: "a/", From: mid, HasFrom: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rest := collect(t, r, 5); describe(rest) != describe(got[5:]) {
		t.Fatalf("resumed from %d:\n got  %s\n want %s", mid, describe(rest), describe(got[5:]))
	}

	// Writes go on while a watcher sits idle; far behind, it is closed for lag
	// (its writes all committed meanwhile) and the oldest history is gone.
	for i := range 150 {
		if _, err := l.store.Set(ctx, fmt.Sprintf("c/%d", i), []byte(`1`), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "g applies the writes", func() bool { return g.WatchStats().RingEvictions > 0 })
	if _, err := stalled.Next(ctx, nil, 10); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("stalled watcher: %v, want ErrLagged", err)
	}
	var ce *watch.CompactedError
	if _, err := g.Watch(ctx, WatchRequest{From: 1, HasFrom: true}); !errors.As(err, &ce) || ce.Oldest <= 1 {
		t.Fatalf("Watch from 1 after eviction: %v", err)
	}
	if st := g.WatchStats(); st.ClosedForLag != 1 {
		t.Fatalf("stats %+v", st)
	}
}
