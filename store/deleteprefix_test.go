package store

import (
	"fmt"
	"testing"
	"time"
)

// TestDeletePrefixInChunks: a bulk delete of 50 keys with chunks of 7 takes
// several log entries, removes every key of the prefix (counting them all),
// leaves other keys, and works through a follower; an idempotent retry after
// it finished returns the original count and leaves keys written since.
func TestDeletePrefixInChunks(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DeletePrefixChunk = 7 })
	l := c.leader()
	f := c.followers(l)[0]
	for i := range 50 {
		mustSet(t, l, fmt.Sprintf("sess/u1/%02d", i), `1`, 0)
	}
	mustSet(t, l, "sess/u2/a", `1`, 0)
	before := l.store.raft.LastIndex()

	opts := WriteOptions{IdempotencyKey: "logout-u1", Fingerprint: [32]byte{9}}
	del, err := f.store.DeletePrefix(ctxTimeout(t, 20*time.Second), "sess/u1/", opts)
	if err != nil || del.Deleted != 50 {
		t.Fatalf("bulk delete: %+v %v, want 50 deleted", del, err)
	}
	if entries := del.Index - before; entries < 8 {
		t.Fatalf("bulk delete of 50 keys in chunks of 7 took %d log entries, want at least 8", entries)
	}
	res, _, err := f.store.List(ctxTimeout(t, 10*time.Second), ListRequest{Prefix: "sess/", Limit: 100, ReadOptions: ReadOptions{MinIndex: del.Index}})
	if err != nil || len(res.Items) != 1 || res.Items[0].Key != "sess/u2/a" {
		t.Fatalf("after the bulk delete: %+v %v, want sess/u2/a only", res.Items, err)
	}

	mustSet(t, l, "sess/u1/new", `1`, 0)
	again, err := l.store.DeletePrefix(ctxTimeout(t, 20*time.Second), "sess/u1/", opts)
	if err != nil || again.Deleted != 50 {
		t.Fatalf("idempotent retry: %+v %v, want the original count 50", again, err)
	}
	if _, err := l.store.Get(ctxTimeout(t, 10*time.Second), "sess/u1/new", Linearizable); err != nil {
		t.Fatalf("a key written after the bulk delete was removed by its retry: %v", err)
	}
	plain, err := f.store.DeletePrefix(ctxTimeout(t, 20*time.Second), "sess/u1/", WriteOptions{})
	if err != nil || plain.Deleted != 1 {
		t.Fatalf("a new bulk delete: %+v %v, want 1", plain, err)
	}
}
