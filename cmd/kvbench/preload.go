package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// preloadResult reports the preload phase.
type preloadResult struct {
	Keys    int     `json:"keys"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
}

// doPreload PUTs every key of the key space once, with the run's value size
// and TTL, on preloadConcurrency workers. Any failed PUT fails the preload:
// a run on a half-loaded key space would measure misses, not the store.
func (b *bench) doPreload(ctx context.Context) (*preloadResult, error) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := make([]*worker, min(b.cfg.preloadConcurrency, b.cfg.keys))
	for i := range workers {
		w := &worker{id: i, rng: rand.New(rand.NewPCG(b.seed(i))), st: newStats()}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= b.cfg.keys {
					return
				}
				res, msg := b.send(ctx, w, opPut, k)
				if res.errKey != "" {
					w.st[opPut].errs[res.errKey]++
					if _, ok := w.st[opPut].sample[res.errKey]; !ok {
						w.st[opPut].sample[res.errKey] = msg
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("preload interrupted: %w", err)
	}
	total := newStats()
	for _, w := range workers {
		total.merge(w.st)
	}
	if errs := total[opPut].errs; len(errs) > 0 {
		keys := make([]string, 0, len(errs))
		var n uint64
		for k, v := range errs {
			keys = append(keys, k)
			n += v
		}
		sort.Slice(keys, func(i, j int) bool { return errs[keys[i]] > errs[keys[j]] })
		msg := ""
		if s := total[opPut].sample[keys[0]]; s != "" {
			msg = " (" + s + ")"
		}
		return nil, fmt.Errorf("preload: %d of %d PUTs failed; most often %q x%d%s", n, b.cfg.keys, keys[0], errs[keys[0]], msg)
	}
	secs := time.Since(start).Seconds()
	if !b.cfg.preloadOnly { // otherwise the report says it
		fmt.Fprintf(b.log, "kvbench: preloaded %d keys in %.1fs (%.0f/s)\n", b.cfg.keys, secs, float64(b.cfg.keys)/secs)
	}
	return &preloadResult{Keys: b.cfg.keys, Seconds: secs, Rate: float64(b.cfg.keys) / secs}, nil
}
