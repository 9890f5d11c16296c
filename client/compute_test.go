package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

func TestGetOrComputeHitAndMiss(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)
	calls := 0
	fn := func(context.Context) (any, error) { calls++; return map[string]int{"n": calls}, nil }

	it, err := c.GetOrCompute(ctx, "cache-1", time.Hour, fn)
	if err != nil || string(it.Value) != `{"n":1}` || it.Version == 0 || it.ExpiresAt.IsZero() {
		t.Fatalf("miss: %+v %v", it, err)
	}
	it2, err := c.GetOrCompute(ctx, "cache-1", time.Hour, fn)
	if err != nil || string(it2.Value) != `{"n":1}` || it2.Version != it.Version || calls != 1 {
		t.Fatalf("hit: %+v %v after %d calls", it2, err, calls)
	}

	boom := errors.New("boom")
	if _, err := c.GetOrCompute(ctx, "cache-2", time.Hour, func(context.Context) (any, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if _, err := c.Get(ctx, "cache-2"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a failed computation was stored: %v", err)
	}
	if it, err := c.GetOrCompute(ctx, "cache-3", 0, func(context.Context) (any, error) { return json.RawMessage(`[1, 2]`), nil }); err != nil || !it.ExpiresAt.IsZero() {
		t.Fatalf("no ttl: %+v %v", it, err)
	}
}

func TestGetOrComputeSingleFlight(t *testing.T) {
	ctx := context.Background()
	_, c := healthy(t)
	var calls atomic.Int64
	release := make(chan struct{})
	fn := func(context.Context) (any, error) {
		calls.Add(1)
		<-release
		return "computed", nil
	}

	const callers = 20
	var wg sync.WaitGroup
	results := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			it, err := c.GetOrCompute(ctx, "hot", time.Minute, fn)
			if err != nil {
				t.Error(err)
			}
			results <- string(it.Value)
		})
	}
	// Wait until the computation has started, then let it finish.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != `"computed"` {
			t.Fatalf("a caller got %s", v)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("fn ran %d times for one key", n)
	}
}

// TestGetOrComputeLosesTheCreateRace: another process stores the key between
// this one's miss and its create-only write; this one returns the winner's
// value, and the stored value is the winner's.
func TestGetOrComputeLosesTheCreateRace(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	nodes := startNodes(t, fake, nil)
	a := newClient(t, urls(nodes))
	b := newClient(t, urls(nodes)) // the other process

	it, err := a.GetOrCompute(ctx, "report", time.Hour, func(ctx context.Context) (any, error) {
		if _, err := b.GetOrCompute(ctx, "report", time.Hour, func(context.Context) (any, error) { return "from b", nil }); err != nil {
			return nil, err
		}
		return "from a", nil
	})
	if err != nil || string(it.Value) != `"from b"` || it.Version == 0 {
		t.Fatalf("loser got %+v %v", it, err)
	}
	if v, _ := fake.Value("report"); string(v) != `"from b"` {
		t.Fatalf("stored %s", v)
	}
	if fake.Applied() != 1 {
		t.Fatalf("%d writes applied", fake.Applied())
	}
}

func TestGetOrComputeStoreFailureReturnsTheValue(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	nodes := startNodes(t, fake, func(r *http.Request) kvfake.Fault {
		if writes(r) {
			return kvfake.Unavailable
		}
		return kvfake.NoFault
	})
	c := newClient(t, urls(nodes))
	it, err := c.GetOrCompute(ctx, "k", time.Hour, func(context.Context) (any, error) { return 7, nil })
	if !errors.Is(err, client.ErrUnavailable) || string(it.Value) != "7" || it.Version != 0 {
		t.Fatalf("got %+v %v; want the computed value, version 0 and the store error", it, err)
	}

	// A read failure other than a miss is returned without computing.
	down := newClient(t, urls(startNodes(t, fake, always(kvfake.Unavailable))))
	computed := false
	if _, err := down.GetOrCompute(ctx, "k", time.Hour, func(context.Context) (any, error) { computed = true; return 1, nil }); !errors.Is(err, client.ErrUnavailable) || computed {
		t.Fatalf("read failure: %v (computed %v)", err, computed)
	}
}

func TestGetOrComputeWaiterOutlivesACanceledComputer(t *testing.T) {
	_, c := healthy(t)
	started := make(chan struct{})
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, err := c.GetOrCompute(firstCtx, "k", time.Minute, func(ctx context.Context) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		firstDone <- err
	}()
	<-started
	waiterDone := make(chan client.Item, 1)
	go func() {
		it, err := c.GetOrCompute(context.Background(), "k", time.Minute, func(context.Context) (any, error) { return "second", nil })
		if err != nil {
			t.Error(err)
		}
		waiterDone <- it
	}()
	cancelFirst()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	if it := <-waiterDone; string(it.Value) != `"second"` {
		t.Fatalf("waiter got %s", it.Value)
	}
}
