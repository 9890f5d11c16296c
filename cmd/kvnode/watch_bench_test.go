package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// BenchmarkWatchFanout: one node, writers putting as fast as they can for
// 5 s, with 0, 100 and 1,000 SSE watchers of every key on the same node.
// Each value carries its send time; every watcher measures delivery latency
// (now − send) of every event. Reports write throughput, delivery p50/p99
// and events delivered per second. Run:
//
//	go test ./cmd/kvnode -run '^$' -bench WatchFanout -benchtime 1x
func BenchmarkWatchFanout(b *testing.B) {
	for _, watchers := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			for range b.N {
				benchFanout(b, watchers, 5*time.Second)
			}
		})
	}
}

func benchFanout(b *testing.B, watchers int, d time.Duration) {
	n, stop := startBenchNode(b)
	defer stop()
	base := "http://" + n.httpAddr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var lat []time.Duration
	var events atomic.Int64
	var ready sync.WaitGroup
	var done sync.WaitGroup
	tr := &http.Transport{MaxConnsPerHost: 0, DisableCompression: true}
	for range watchers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/kv/watch?consistency=stale", nil)
			req.Header.Set("Authorization", "Bearer secret")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				ready.Done()
				return
			}
			defer resp.Body.Close()
			ready.Done()
			var local []time.Duration
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Bytes()
				if !bytes.HasPrefix(line, []byte(`data: {"type":"set"`)) {
					continue
				}
				// The value is {"t":<unix ns>}.
				i := bytes.Index(line, []byte(`"value":{"t":`))
				if i < 0 {
					continue
				}
				rest := line[i+len(`"value":{"t":`):]
				j := bytes.IndexByte(rest, '}')
				ts, err := strconv.ParseInt(string(rest[:j]), 10, 64)
				if err == nil {
					local = append(local, time.Since(time.Unix(0, ts)))
				}
				events.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	ready.Wait()
	c, err := client.New(client.Config{Endpoints: []string{base}, APIKey: "secret"})
	if err != nil {
		b.Fatal(err)
	}
	var writes atomic.Int64
	wctx, wcancel := context.WithTimeout(ctx, d)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; wctx.Err() == nil; i++ {
				v := json.RawMessage(fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano()))
				if _, err := c.Put(wctx, fmt.Sprintf("bench/%d/%d", w, i%100), v); err == nil {
					writes.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	wcancel()
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond) // let the last events arrive (pacing, not a condition)
	cancel()
	done.Wait()
	b.ReportMetric(float64(writes.Load())/elapsed.Seconds(), "writes/s")
	if watchers > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
		b.ReportMetric(float64(events.Load())/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(events.Load())/float64(max(writes.Load(), 1)*int64(watchers)), "delivered-frac")
	}
}

// startBenchNode starts one node as main does, quietly, for benchmarks.
func startBenchNode(b *testing.B) (*node, func()) {
	b.Helper()
	args := []string{"--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--insecure-peer",
		"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--api-key", "secret", "--data-dir", b.TempDir()}
	o, err := parseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	logger, err := newLogger(o, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	n, err := start(o, logger, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !n.store.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return n, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.stop(ctx)
	}
}

// hotKeyClient starts a benchmark node, writes "hot/key" and returns a
// client of the node; stop ends the node.
func hotKeyClient(b *testing.B) (*client.Client, func()) {
	n, stop := startBenchNode(b)
	c, err := client.New(client.Config{Endpoints: []string{"http://" + n.httpAddr}, APIKey: "secret"})
	if err == nil {
		_, err = c.Put(context.Background(), "hot/key", map[string]int{"n": 1})
	}
	if err != nil {
		stop()
		b.Fatal(err)
	}
	return c, stop
}

// BenchmarkNearCacheHit: Cache.Get of a held key, in parallel, in-process
// (no network on the hit path). Reports reads/s.
func BenchmarkNearCacheHit(b *testing.B) {
	c, stop := hotKeyClient(b)
	defer stop()
	ctx := context.Background()
	cache, err := client.NewCache(c, client.CacheConfig{Prefix: "hot/", MaxStaleness: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	for deadline := time.Now().Add(10 * time.Second); !cache.Fresh(); {
		if time.Now().After(deadline) {
			b.Fatal("cache never fresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := cache.Get(ctx, "hot/key"); err != nil { // fill
		b.Fatal(err)
	}
	before := cache.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cache.Get(ctx, "hot/key"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	after := cache.Stats()
	b.ReportMetric(float64(after.Hits-before.Hits)/float64(b.N), "hit-frac")
}

// BenchmarkClusterGetForCache is BenchmarkNearCacheHit's key read through
// Client.Get (a linearizable read over HTTP to the same in-process node),
// for the ratio.
func BenchmarkClusterGetForCache(b *testing.B) {
	c, stop := hotKeyClient(b)
	defer stop()
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, "hot/key"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
