package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestNearCacheGuarantee runs a near cache on a follower while a writer
// increments a counter through the leader, and checks every cached read
// against the stated guarantee: its version is never below the last one
// acknowledged before (read time − MaxStaleness), never above the last one
// issued (nothing uncommitted), and never goes back. It also checks
// read-your-writes, a local TTL, and that the cache serves hits at all.
func TestNearCacheGuarantee(t *testing.T) {
	n1, n2, n3, _ := startThreeNodes(t)
	writer, err := client.New(client.Config{Endpoints: []string{"http://" + n1.httpAddr}, APIKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := client.New(client.Config{Endpoints: []string{"http://" + n2.httpAddr, "http://" + n3.httpAddr}, APIKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	const staleness = 300 * time.Millisecond
	cache, err := client.NewCache(reader, client.CacheConfig{Prefix: "c/", MaxStaleness: staleness})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitUntil(t, 10*time.Second, "the cache is fresh", cache.Fresh)

	// Acknowledged versions with the time of their acknowledgement.
	type ack struct {
		at      time.Time
		version uint64
	}
	var mu sync.Mutex
	var acks []ack
	var issuedMax uint64
	ackedBefore := func(t time.Time) uint64 {
		mu.Lock()
		defer mu.Unlock()
		var v uint64
		for _, a := range acks {
			if a.at.Before(t) {
				v = max(v, a.version)
			}
		}
		return v
	}
	if _, err := writer.Put(ctx, "c/counter", 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 150; i++ {
			res, err := writer.Incr(ctx, "c/counter", 1)
			if err != nil {
				t.Errorf("incr: %v", err)
				return
			}
			mu.Lock()
			acks = append(acks, ack{time.Now(), res.Version})
			issuedMax = max(issuedMax, res.Version)
			mu.Unlock()
		}
	}()
	var last uint64
	reads := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		start := time.Now()
		it, err := cache.Get(ctx, "c/counter")
		if err != nil {
			t.Fatalf("cache Get: %v", err)
		}
		reads++
		floor := ackedBefore(start.Add(-staleness))
		mu.Lock()
		ceiling := max(issuedMax, it.Version) // a write may be applied before its ack reaches us
		mu.Unlock()
		switch {
		case it.Version < floor:
			t.Fatalf("read at %s returned version %d; version %d was acknowledged more than %s before", start.Format(time.StampMilli), it.Version, floor, staleness)
		case it.Version < last:
			t.Fatalf("version went back from %d to %d", last, it.Version)
		case it.Version > ceiling+1:
			t.Fatalf("version %d beyond any write issued (%d)", it.Version, ceiling)
		}
		last = it.Version
		time.Sleep(100 * time.Microsecond) // pacing, not waiting: keeps the shared CPUs for the nodes
	}
	st := cache.Stats()
	t.Logf("near cache: %d reads checked, stats %+v", reads, st)
	if st.Hits == 0 {
		t.Fatalf("no read was served from the cache: %+v", st)
	}

	// Read-your-writes: the cache's own write is seen at once.
	res, err := cache.Put(ctx, "c/mine", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if it, err := cache.Get(ctx, "c/mine"); err != nil || it.Version != res.Version {
		t.Fatalf("own write: Get = %+v, %v; want version %d", it, err, res.Version)
	}
	if _, err := cache.Delete(ctx, "c/mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, "c/mine"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("own delete: Get = %v, want not found", err)
	}
	// A TTL is honoured locally.
	if _, err := cache.Put(ctx, "c/ttl", 1, client.TTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, "c/ttl"); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	waitUntil(t, 10*time.Second, "c/ttl expires", func() bool {
		_, err := cache.Get(ctx, "c/ttl")
		return errors.Is(err, client.ErrNotFound)
	})
	// Closed: every read goes to the cluster.
	cache.Close()
	before := cache.Stats().Fallbacks
	if _, err := cache.Get(ctx, "c/counter"); err != nil || cache.Stats().Fallbacks != before+1 {
		t.Fatalf("after Close: %v, stats %+v", err, cache.Stats())
	}
}
