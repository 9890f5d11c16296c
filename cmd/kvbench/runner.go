package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// bench runs one configured benchmark. The HTTP client keeps up to
// concurrency persistent connections per endpoint, so neither mode pays for
// connection setup once warm.
type bench struct {
	cfg    config
	tgt    target
	wl     workload
	client *http.Client
	log    io.Writer
	keyFmt string
	rr     atomic.Uint64 // round-robin endpoint counter
	via    *clientSender // -via client; nil: raw HTTP
}

func newBench(cfg config, log io.Writer) (*bench, error) {
	conns := max(cfg.concurrency, cfg.preloadConcurrency)
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * len(cfg.endpoints),
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	width := max(5, len(strconv.Itoa(cfg.keys-1)))
	var via *clientSender
	if cfg.via == "client" {
		var err error
		if via, err = newClientSender(cfg); err != nil {
			return nil, err
		}
	}
	return &bench{
		via:    via,
		cfg:    cfg,
		tgt:    newTarget(cfg),
		wl:     workload{name: cfg.workload, readFraction: cfg.readFraction},
		client: &http.Client{Transport: tr, Timeout: cfg.timeout},
		log:    log,
		keyFmt: "%s%0" + strconv.Itoa(width) + "d",
	}, nil
}

func (b *bench) close() {
	b.client.CloseIdleConnections()
	if b.via != nil {
		b.via.close()
	}
}

// opStats is one worker's tally for one op.
type opStats struct {
	hist   *histogram
	ok     uint64 // 2xx, and misses the workload accepts
	misses uint64
	errs   map[string]uint64
	sample map[string]string // first message seen per transport error key
}

type stats [numOps]opStats

func newStats() *stats {
	var s stats
	for i := range s {
		s[i] = opStats{hist: newHistogram(), errs: map[string]uint64{}, sample: map[string]string{}}
	}
	return &s
}

func (s *stats) merge(o *stats) {
	for i := range s {
		s[i].hist.Merge(o[i].hist)
		s[i].ok += o[i].ok
		s[i].misses += o[i].misses
		for k, v := range o[i].errs {
			s[i].errs[k] += v
		}
		for k, v := range o[i].sample {
			if _, ok := s[i].sample[k]; !ok {
				s[i].sample[k] = v
			}
		}
	}
}

// worker is one goroutine's state: its random source, buffers and tally.
type worker struct {
	id   int
	rng  *rand.Rand
	body bytes.Buffer
	resp bytes.Buffer
	st   *stats
}

// endpoint picks the index of the endpoint for the worker's next request.
func (b *bench) endpoint(w *worker) int {
	n := len(b.cfg.endpoints)
	if b.cfg.endpointMode == "roundrobin" {
		return int((b.rr.Add(1) - 1) % uint64(n))
	}
	return w.id % n
}

func (b *bench) key(i int) string { return fmt.Sprintf(b.keyFmt, b.cfg.keyPrefix, i) }

// send performs one request and returns its outcome. It always reads and
// closes the body, so the connection goes back to the pool.
func (b *bench) send(ctx context.Context, w *worker, o op, keyIndex int) (outcome, string) {
	w.body.Reset()
	if b.via != nil {
		return b.via.send(ctx, b.endpoint(w), w, o, b.key(keyIndex), keyIndex)
	}
	req, err := b.tgt.newRequest(b.cfg.endpoints[b.endpoint(w)], o, b.key(keyIndex), keyIndex, &w.body)
	if err != nil {
		return outcome{errKey: "client: cannot build request"}, err.Error()
	}
	resp, err := b.client.Do(req.WithContext(ctx))
	if err != nil {
		return outcome{errKey: transportErrorKey(err)}, err.Error()
	}
	w.resp.Reset()
	_, err = w.resp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return outcome{errKey: transportErrorKey(err)}, err.Error()
	}
	return b.tgt.classify(o, resp.StatusCode, w.resp.Bytes()), ""
}

// transportErrorKey labels a failure without an HTTP answer.
func transportErrorKey(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "transport: canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "transport: timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport: connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport: connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport: connection closed (EOF)"
	}
	return "transport: other"
}

// iterate runs one workload iteration that was due at intended. Latency of
// its first request is measured from intended (the open-loop schedule, or
// the moment the closed-loop worker became free); a follow-up request from
// its own send time. record=false runs it without tallying (warmup).
func (b *bench) iterate(ctx context.Context, w *worker, intended time.Time, record bool) {
	keyIndex := w.rng.IntN(b.cfg.keys)
	o := b.wl.first(w.rng)
	from := intended
	for {
		res, msg := b.send(ctx, w, o, keyIndex)
		if ctx.Err() != nil && res.errKey == "transport: canceled" {
			return // interrupted: neither a result nor an error of the server
		}
		if record {
			s := &w.st[o]
			s.hist.Record(time.Since(from))
			switch {
			case res.errKey != "":
				s.errs[res.errKey]++
				if _, ok := s.sample[res.errKey]; !ok && msg != "" {
					s.sample[res.errKey] = msg
				}
			case res.miss && b.wl.missIsError(o):
				s.misses++
				s.errs["404 not_found (read workload: key missing)"]++
			case res.miss:
				s.misses++
				s.ok++
			default:
				s.ok++
			}
		}
		next, ok := b.wl.then(o, res)
		if !ok {
			return
		}
		o, from = next, time.Now()
	}
}

// runResult is what the measured phase produced.
type runResult struct {
	stats   *stats
	elapsed time.Duration
	// unsent counts open-loop requests that were due inside the measured
	// window but never sent, because every worker was busy until the end.
	unsent uint64
}

// run does the optional preload, the warmup and the measured phase.
func (b *bench) run(ctx context.Context) (*result, error) {
	var pre *preloadResult
	if b.cfg.preload {
		var err error
		if pre, err = b.doPreload(ctx); err != nil {
			return nil, err
		}
	}
	if b.cfg.preloadOnly {
		return &result{Target: b.cfg.target, Workload: "preload", Endpoints: b.cfg.endpoints, Keys: b.cfg.keys,
			ValueSize: b.cfg.valueSize, TTLSeconds: b.cfg.ttlSeconds, Preload: pre, Ops: map[string]opResult{}, Errors: []errorCount{}}, nil
	}
	rr, err := b.measure(ctx)
	if err != nil {
		return nil, err
	}
	return newResult(b.cfg, rr, pre), nil
}

func (b *bench) seed(i int) (uint64, uint64) {
	s := b.cfg.seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	return s, uint64(i)*0x9e3779b97f4a7c15 + 1
}

func (b *bench) measure(ctx context.Context) (runResult, error) {
	start := time.Now()
	measureFrom := start.Add(b.cfg.warmup)
	end := measureFrom.Add(b.cfg.duration)
	// Requests in flight at the end finish (within -timeout) and count; a
	// Ctrl-C cancels them.
	workers := make([]*worker, b.cfg.concurrency)
	for i := range workers {
		workers[i] = &worker{id: i, rng: rand.New(rand.NewPCG(b.seed(i))), st: newStats()}
	}
	var wg sync.WaitGroup
	var unsent uint64
	if b.cfg.rate > 0 {
		due := make(chan time.Time, max(1024, 4*b.cfg.concurrency))
		for _, w := range workers {
			wg.Go(func() {
				for t := range due {
					if time.Now().After(end) || ctx.Err() != nil {
						if !t.Before(measureFrom) {
							atomic.AddUint64(&unsent, 1)
						}
						continue
					}
					b.iterate(ctx, w, t, !t.Before(measureFrom))
				}
			})
		}
		atomic.AddUint64(&unsent, schedule(ctx, due, start, end, measureFrom, b.cfg.rate))
		close(due)
	} else {
		for _, w := range workers {
			wg.Go(func() {
				for {
					now := time.Now()
					if !now.Before(end) || ctx.Err() != nil {
						return
					}
					b.iterate(ctx, w, now, !now.Before(measureFrom))
				}
			})
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return runResult{}, fmt.Errorf("interrupted: %w", err)
	}
	total := newStats()
	for _, w := range workers {
		total.merge(w.st)
	}
	elapsed := time.Since(measureFrom)
	if b.cfg.rate > 0 {
		// Open loop offers load for exactly the window; stragglers finishing
		// later do not stretch it.
		elapsed = b.cfg.duration
	}
	return runResult{stats: total, elapsed: elapsed, unsent: unsent}, nil
}

// schedule sends the intended start time of every request due at rate per
// second from start until end. It sends each time no earlier than due and
// never drops one while the channel is merely full: a blocked send delays
// the request, and its latency, which is still counted from the schedule.
// It returns the number of measured requests (due at or after measureFrom)
// that were still unsent at end or on cancellation.
func schedule(ctx context.Context, due chan<- time.Time, start, end, measureFrom time.Time, rate float64) uint64 {
	interval := time.Duration(float64(time.Second) / rate)
	total := int64(end.Sub(start) / interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := int64(0); i < total; i++ {
		t := start.Add(time.Duration(i) * interval)
		if d := time.Until(t); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return unsentFrom(i, total, start, measureFrom, interval)
			}
		}
		if time.Now().After(end) {
			return unsentFrom(i, total, start, measureFrom, interval)
		}
		select {
		case due <- t:
		case <-ctx.Done():
			return unsentFrom(i, total, start, measureFrom, interval)
		}
	}
	return 0
}

// unsentFrom counts the measured requests among indexes i..total-1.
func unsentFrom(i, total int64, start, measureFrom time.Time, interval time.Duration) uint64 {
	first := int64((measureFrom.Sub(start) + interval - 1) / interval) // first measured index
	return uint64(max(total-max(i, first), 0))
}
