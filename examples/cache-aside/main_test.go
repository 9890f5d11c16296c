package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

// TestStampedeComputesOncePerProcessAndServesOneValue runs two instances of
// the service (two processes, each with its own client) against one fake
// cluster, and sends 20 concurrent requests for one cold key to each. Each
// instance computes at most once; every response is the stored value.
func TestStampedeComputesOncePerProcessAndServesOneValue(t *testing.T) {
	fake := kvfake.New()
	kvSrv := httptest.NewServer(fake.Handler(nil))
	defer kvSrv.Close()

	var lookups atomic.Int64
	release := make(chan struct{})
	lookup := func(ctx context.Context, sku string) (price, error) {
		n := lookups.Add(1)
		<-release
		return price{SKU: sku, Cents: 1000 + n, ComputedAt: n}, nil
	}
	var instances []*httptest.Server
	for range 2 {
		kv, err := client.New(client.Config{Endpoints: []string{kvSrv.URL}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer((&service{kv: kv, ttl: time.Hour, lookup: lookup}).routes())
		defer srv.Close()
		instances = append(instances, srv)
	}

	const perInstance = 20
	bodies := make(chan string, 2*perInstance)
	var wg sync.WaitGroup
	for _, inst := range instances {
		for range perInstance {
			wg.Go(func() {
				resp, err := http.Get(inst.URL + "/price?sku=item_1")
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Errorf("status %d: %s", resp.StatusCode, b)
				}
				bodies <- string(b)
			})
		}
	}
	// Let the lookups finish once at least one has started (the others are
	// either waiting on it or about to start their own).
	for lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(bodies)

	if n := lookups.Load(); n < 1 || n > 2 {
		t.Fatalf("%d lookups for one key from two processes; want 1 or 2", n)
	}
	stored, ok := fake.Value("cache/price/item_1")
	if !ok {
		t.Fatal("nothing cached")
	}
	var p price
	if err := json.Unmarshal(stored, &p); err != nil || p.SKU != "item_1" {
		t.Fatalf("cached %s: %v", stored, err)
	}
	for b := range bodies {
		if b != string(stored)+"\n" {
			t.Fatalf("served %q, but the cache holds %s", b, stored)
		}
	}
	if fake.Applied() != 1 {
		t.Fatalf("%d writes; want exactly one stored value", fake.Applied())
	}

	// Warm: no more lookups.
	resp, err := http.Get(instances[1].URL + "/price?sku=item_1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if lookups.Load() > 2 {
		t.Fatal("a warm key was computed again")
	}
}
