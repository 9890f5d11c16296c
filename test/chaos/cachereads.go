package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	kv "github.com/quorumkv/quorumkv/client"
)

// cacheStaleness is the near caches' MaxStaleness in the chaos runs: short,
// so that the bound is tight enough to catch a stale answer within the
// scenario, long enough that most reads are hits.
const cacheStaleness = 500 * time.Millisecond

// cacheReaders run Go-client near caches (client.NewCache, one starting on
// each node, failing over to the others) alongside the workload, each read
// by one goroutine that gets register keys in turn and records every answer.
// checkCacheReads holds the answers to the cache's staleness guarantee.
type cacheReaders struct {
	list   []*cacheReader
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type cacheReader struct {
	node  string
	cache *kv.Cache
	mu    sync.Mutex
	reads []cacheRead
	errs  int // reads that failed (every node unreachable): not checked
	stats kv.CacheStats
}

// cacheRead is one answered Get of a near cache. Times are nanoseconds
// since the scenario's start, like Op's.
type cacheRead struct {
	Key     string `json:"key"`
	Found   bool   `json:"found"`
	Value   string `json:"value,omitempty"`
	Version uint64 `json:"version,omitempty"`
	Call    int64  `json:"call"`
	Return  int64  `json:"return"`
}

func startCacheReaders(nodes []*node, apiKey string, regKeys int, seed int64, start time.Time) (*cacheReaders, error) {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &cacheReaders{cancel: cancel}
	for i := range nodes {
		c, err := nodeClient(nodes, i, apiKey, 1500*time.Millisecond,
			kv.RetryPolicy{MaxAttempts: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond})
		if err != nil {
			rs.stop()
			return nil, err
		}
		cache, err := kv.NewCache(c, kv.CacheConfig{Prefix: "k", MaxStaleness: cacheStaleness})
		if err != nil {
			rs.stop()
			return nil, err
		}
		r := &cacheReader{node: nodes[i].id, cache: cache}
		rs.list = append(rs.list, r)
		rng := rand.New(rand.NewSource(seed*7919 + int64(i)))
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			defer cache.Close()
			r.run(ctx, rng, regKeys, start)
		}()
	}
	return rs, nil
}

// run reads random register keys, one at a time, until ctx ends.
func (r *cacheReader) run(ctx context.Context, rng *rand.Rand, regKeys int, start time.Time) {
	for ctx.Err() == nil {
		key := fmt.Sprintf("k%02d", rng.Intn(regKeys))
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		call := int64(time.Since(start))
		it, err := r.cache.Get(rctx, key)
		ret := int64(time.Since(start))
		cancel()
		rd := cacheRead{Key: key, Call: call, Return: ret}
		switch {
		case err == nil:
			var v string
			if json.Unmarshal(it.Value, &v) != nil {
				v = string(it.Value) // not a workload value: the check reports it
			}
			rd.Found, rd.Value, rd.Version = true, v, it.Version
		case errors.Is(err, kv.ErrNotFound):
		default:
			r.mu.Lock()
			r.errs++
			r.mu.Unlock()
			if ctx.Err() == nil {
				sleep(ctx, 50*time.Millisecond)
			}
			continue
		}
		r.mu.Lock()
		r.reads = append(r.reads, rd)
		r.mu.Unlock()
		sleep(ctx, time.Duration(rng.Int63n(int64(10*time.Millisecond))))
	}
}

// stop ends the readers and closes their caches.
func (rs *cacheReaders) stop() {
	rs.cancel()
	rs.wg.Wait()
	for _, r := range rs.list {
		r.stats = r.cache.Stats()
	}
}

// cacheReport is what the near-cache checks found.
type cacheReport struct {
	Caches       int      `json:"caches"`
	Reads        int      `json:"readsChecked"`
	Hits         uint64   `json:"hits"`
	Fallbacks    uint64   `json:"fallbacks"` // linearizable reads while not confirmed fresh
	Failed       int      `json:"failedReads"`
	MaxStaleness float64  `json:"maxStalenessSec"`
	Problems     []string `json:"problems,omitempty"`
}

// checkCacheReads holds each cached read to the near cache's guarantee with
// the staleness bound as the model, using the workload's history as the
// evidence of what was written:
//   - a value found was written to that key by a put that can have taken
//     effect (ok or unknown; not refused, not a 412), at the version the put
//     reported when acknowledged, and not after the read returned;
//   - it is no older than the state after every write acknowledged before the
//     read's call − staleness: no acknowledged put of a higher version
//     returned by then, no acknowledged delete that began after the value's
//     (acknowledged) put returned and itself returned by then; an absent
//     answer needs a delete that may lie after the newest put acknowledged by
//     then (acknowledged after that put's call, or of unknown outcome: those
//     may apply at any time after their call);
//   - per cache and key, answers never go back in log order: the version
//     found never decreases, and a version once followed by an absent answer
//     does not come back.
func checkCacheReads(rs *cacheReaders, ops []Op, staleness time.Duration) cacheReport {
	rep := cacheReport{Caches: len(rs.list), MaxStaleness: staleness.Seconds()}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < 50 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	type keyHist struct {
		puts    map[string]Op // value → put that can have taken effect
		ackPuts []Op          // acknowledged puts, by Return
		ackDels []Op          // acknowledged deletes, by Return
		dels    []Op          // deletes that can have taken effect
	}
	hist := map[string]*keyHist{}
	get := func(key string) *keyHist {
		h := hist[key]
		if h == nil {
			h = &keyHist{puts: map[string]Op{}}
			hist[key] = h
		}
		return h
	}
	for _, op := range ops {
		if op.Class != classReg || op.Outcome == outFail || op.Precond {
			continue
		}
		h := get(op.Key)
		switch op.Kind {
		case opPut:
			h.puts[op.Value] = op
			if op.Outcome == outOK {
				h.ackPuts = append(h.ackPuts, op)
			}
		case opDelete:
			h.dels = append(h.dels, op)
			if op.Outcome == outOK {
				h.ackDels = append(h.ackDels, op)
			}
		}
	}
	for _, h := range hist {
		sort.Slice(h.ackPuts, func(i, j int) bool { return h.ackPuts[i].Return < h.ackPuts[j].Return })
		sort.Slice(h.ackDels, func(i, j int) bool { return h.ackDels[i].Return < h.ackDels[j].Return })
	}
	for _, r := range rs.list {
		rep.Reads += len(r.reads)
		rep.Failed += r.errs
		rep.Hits += r.stats.Hits
		rep.Fallbacks += r.stats.Fallbacks
		type seen struct {
			version uint64 // highest version found
			gone    bool   // an absent answer came after it
		}
		last := map[string]*seen{}
		for _, rd := range r.reads {
			h := get(rd.Key)
			bound := rd.Call - int64(staleness)
			at := time.Duration(rd.Call).Seconds()
			// The newest acknowledged put by the bound.
			var newest *Op
			for i := range h.ackPuts {
				if h.ackPuts[i].Return >= bound {
					break
				}
				if newest == nil || h.ackPuts[i].Version > newest.Version {
					newest = &h.ackPuts[i]
				}
			}
			if rd.Found {
				p, ok := h.puts[rd.Value]
				switch {
				case !ok:
					problem("%s: read %s at %.3fs found %q@%d, which no client wrote there with a write that can have taken effect", r.node, rd.Key, at, rd.Value, rd.Version)
					continue
				case p.Outcome == outOK && p.Version != rd.Version:
					problem("%s: read %s at %.3fs found %q@%d, acknowledged at version %d", r.node, rd.Key, at, rd.Value, rd.Version, p.Version)
				case p.Call > rd.Return:
					problem("%s: read %s at %.3fs found %q, whose put began after the read returned", r.node, rd.Key, at, rd.Value)
				}
				if newest != nil && newest.Version > rd.Version {
					problem("%s: read %s at %.3fs found version %d; version %d was acknowledged %.3fs before the call (staleness bound %v)", r.node, rd.Key, at, rd.Version, newest.Version, time.Duration(rd.Call-newest.Return).Seconds(), staleness)
				}
				// A put of unknown outcome may apply after any later write.
				for _, d := range h.ackDels {
					if d.Return >= bound || p.Outcome != outOK {
						break
					}
					if d.Call > p.Return {
						problem("%s: read %s at %.3fs found %q@%d; a delete that began after its put returned was acknowledged %.3fs before the call (staleness bound %v)", r.node, rd.Key, at, rd.Value, rd.Version, time.Duration(rd.Call-d.Return).Seconds(), staleness)
						break
					}
				}
			} else if newest != nil {
				deleted := false
				for _, d := range h.dels {
					// A delete of unknown outcome may apply at any time after its call.
					if (d.Outcome == outUnknown || d.Return > newest.Call) && d.Call < rd.Return {
						deleted = true
						break
					}
				}
				if !deleted {
					problem("%s: read %s at %.3fs found nothing; version %d was acknowledged %.3fs before the call and no delete can follow it (staleness bound %v)", r.node, rd.Key, at, newest.Version, time.Duration(rd.Call-newest.Return).Seconds(), staleness)
				}
			}
			s := last[rd.Key]
			if s == nil {
				s = &seen{}
				last[rd.Key] = s
			}
			switch {
			case !rd.Found:
				s.gone = s.version > 0
			case rd.Version < s.version || (rd.Version == s.version && s.gone):
				problem("%s: read %s at %.3fs found version %d after this cache answered version %d%s (went back)", r.node, rd.Key, at, rd.Version, s.version, map[bool]string{true: " and then absent", false: ""}[s.gone])
			default:
				s.version, s.gone = rd.Version, false
			}
		}
	}
	sort.Strings(rep.Problems)
	return rep
}
