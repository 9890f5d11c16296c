package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is a finished run, as reported (-o json is this struct).
type result struct {
	Target          string         `json:"target"`
	Via             string         `json:"via"` // http or client (-via)
	Workload        string         `json:"workload"`
	Mode            string         `json:"mode"` // closed or open
	Concurrency     int            `json:"concurrency"`
	Rate            float64        `json:"targetRate,omitempty"` // open loop only
	Endpoints       []string       `json:"endpoints"`
	EndpointMode    string         `json:"endpointMode"`
	Consistency     string         `json:"consistency"`
	Keys            int            `json:"keys"`
	ValueSize       int            `json:"valueSize"`
	TTLSeconds      float64        `json:"ttlSeconds"`
	WarmupSeconds   float64        `json:"warmupSeconds"`
	DurationSeconds float64        `json:"durationSeconds"`
	ElapsedSeconds  float64        `json:"elapsedSeconds"` // the window rates are computed over
	Preload         *preloadResult `json:"preload,omitempty"`
	// Ops has one entry per op the workload sent (get, put, incr).
	Ops   map[string]opResult `json:"ops"`
	Total opResult            `json:"total"`
	// Errors lists every error key by op, most frequent first.
	Errors []errorCount `json:"errors"`
	// Unsent (open loop) counts requests due in the window but never sent
	// because every worker was still busy: the server did not keep up.
	Unsent uint64   `json:"unsent,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

type opResult struct {
	Requests uint64  `json:"requests"`
	OK       uint64  `json:"ok"`
	Misses   uint64  `json:"misses"`
	Errors   uint64  `json:"errors"`
	Rate     float64 `json:"rate"` // requests per second, errors included
	Latency  latency `json:"latencyMs"`
}

type latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

type errorCount struct {
	Op     string `json:"op"`
	Error  string `json:"error"`
	Count  uint64 `json:"count"`
	Sample string `json:"sample,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(h *histogram, ok, misses, errs uint64, elapsed time.Duration) opResult {
	n := h.Count()
	return opResult{
		Requests: n, OK: ok, Misses: misses, Errors: errs,
		Rate: float64(n) / elapsed.Seconds(),
		Latency: latency{
			Min: ms(h.Min()), Mean: ms(h.Mean()),
			P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)),
			P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)),
			Max: ms(h.Max()),
		},
	}
}

func newResult(c config, rr runResult, pre *preloadResult) *result {
	r := &result{
		Target: c.target, Via: c.via, Workload: c.workload, Mode: c.mode(), Concurrency: c.concurrency, Rate: c.rate,
		Endpoints: c.endpoints, EndpointMode: c.endpointMode, Consistency: c.consistency,
		Keys: c.keys, ValueSize: c.valueSize, TTLSeconds: c.ttlSeconds,
		WarmupSeconds: c.warmup.Seconds(), DurationSeconds: c.duration.Seconds(), ElapsedSeconds: rr.elapsed.Seconds(),
		Preload: pre, Ops: map[string]opResult{}, Unsent: rr.unsent, Errors: []errorCount{},
	}
	if r.Consistency == "" {
		r.Consistency = "linearizable"
	}
	all := newHistogram()
	var ok, misses, errs uint64
	incrMissing := false
	for o := range numOps {
		s := &rr.stats[o]
		if s.hist.Count() == 0 {
			continue
		}
		var n uint64
		for k, v := range s.errs {
			n += v
			r.Errors = append(r.Errors, errorCount{Op: o.String(), Error: k, Count: v, Sample: s.sample[k]})
			if o == opIncr && (strings.HasPrefix(k, "404 ") || strings.HasPrefix(k, "405 ")) {
				incrMissing = true
			}
		}
		r.Ops[o.String()] = summarize(s.hist, s.ok, s.misses, n, rr.elapsed)
		all.Merge(s.hist)
		ok, misses, errs = ok+s.ok, misses+s.misses, errs+n
	}
	r.Total = summarize(all, ok, misses, errs, rr.elapsed)
	sort.Slice(r.Errors, func(i, j int) bool {
		if r.Errors[i].Count != r.Errors[j].Count {
			return r.Errors[i].Count > r.Errors[j].Count
		}
		return r.Errors[i].Op+r.Errors[i].Error < r.Errors[j].Op+r.Errors[j].Error
	})
	if incrMissing {
		r.Notes = append(r.Notes, "POST /kv/items/{key}/incr answered 404/405: this server has no incr route (an older build without counters)")
	}
	if c.target == "etcd" && c.ttlSeconds > 0 && c.workload != "read" {
		r.Notes = append(r.Notes, "etcd: PUTs carry no TTL (etcd expires keys only through leases)")
	}
	if r.Unsent > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("open loop: %d requests due in the window were never sent (all %d workers busy): the server did not sustain %.0f/s", r.Unsent, c.concurrency, c.rate))
	}
	if r.Total.Requests == 0 {
		r.Notes = append(r.Notes, "no request completed in the measured window")
	}
	return r
}

func writeReport(w io.Writer, c config, r *result) error {
	if c.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeTable(w, r)
}

func writeTable(w io.Writer, r *result) error {
	var b strings.Builder
	if r.Workload == "preload" && r.Preload != nil {
		_, err := fmt.Fprintf(w, "kvbench: preloaded %d keys of %d bytes into %s in %.1fs (%.0f/s)\n",
			r.Preload.Keys, r.ValueSize, strings.Join(r.Endpoints, ","), r.Preload.Seconds, r.Preload.Rate)
		return err
	}
	load := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		load = fmt.Sprintf("open loop at %.0f/s, %d workers (latency from intended send time)", r.Rate, r.Concurrency)
	}
	via := ""
	if r.Via == "client" {
		via = " through the Go client"
	}
	fmt.Fprintf(&b, "kvbench: %s workload on %s %s (%s)%s, %s\n", r.Workload, r.Target, strings.Join(r.Endpoints, ","), r.EndpointMode, via, load)
	fmt.Fprintf(&b, "  %d keys, %d-byte values, ttl %gs, %s reads; warmup %gs, measured %.1fs\n\n",
		r.Keys, r.ValueSize, r.TTLSeconds, r.Consistency, r.WarmupSeconds, r.ElapsedSeconds)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\trequests\treq/s\tmisses\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	line := func(name string, o opResult) {
		l := o.Latency
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			name, o.Requests, o.Rate, o.Misses, o.Errors, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	for o := range numOps {
		if s, ok := r.Ops[o.String()]; ok {
			line(o.String(), s)
		}
	}
	if len(r.Ops) > 1 {
		line("total", r.Total)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nerrors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  %-5s %-40s %d", e.Op, e.Error, e.Count)
			if e.Sample != "" {
				fmt.Fprintf(&b, "  (e.g. %s)", e.Sample)
			}
			b.WriteByte('\n')
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
