package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// config is one benchmark run, as given on the command line.
type config struct {
	// target is the API spoken: "kv" (quorumkv) or "etcd" (v3 JSON gateway).
	target string
	// endpoints are base URLs; endpointMode "pinned" gives worker i
	// endpoints[i%len] for the whole run, "roundrobin" rotates per request.
	endpoints    []string
	endpointMode string
	apiKey       string

	workload     string
	readFraction float64 // session: share of GETs
	consistency  string  // "" (linearizable) or "stale"

	concurrency int
	// rate > 0 selects open-loop mode: rate requests per second in total,
	// scheduled independently of the answers.
	rate     float64
	duration time.Duration
	warmup   time.Duration
	timeout  time.Duration

	keys       int
	keyPrefix  string
	valueSize  int
	ttlSeconds float64 // 0: no TTL
	incrBy     int64
	txnOps     int // txn workload: puts per transaction

	preload            bool
	preloadOnly        bool // preload, report it, and skip the measured run
	preloadConcurrency int

	output string // "text" or "json"
	seed   uint64
}

var workloads = []string{"session", "cache-aside", "write", "read", "counter", "txn"}

// parseFlags reads args; the API key may also come from KV_API_KEY.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	var endpoints, apiKeyFile string
	fs := flag.NewFlagSet("kvbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.target, "target", "kv", "API to load: kv (quorumkv) or etcd (etcd v3 JSON gateway, base64 keys and values)")
	fs.StringVar(&endpoints, "endpoints", "http://127.0.0.1:8080", "comma-separated base URLs")
	fs.StringVar(&c.endpointMode, "endpoint-mode", "pinned", "pinned (worker i always uses endpoint i mod n) or roundrobin (rotate per request)")
	fs.StringVar(&c.apiKey, "api-key", "", "bearer key for -target kv (default $KV_API_KEY; prefer -api-key-file, flags show in ps)")
	fs.StringVar(&apiKeyFile, "api-key-file", "", "file whose first line is the bearer key")
	fs.StringVar(&c.workload, "workload", "session", "one of "+strings.Join(workloads, ", "))
	fs.Float64Var(&c.readFraction, "read-fraction", 0.9, "session workload: fraction of requests that are GETs (the rest are PUTs with TTL)")
	fs.StringVar(&c.consistency, "consistency", "", "read level: empty for linearizable, stale for ?consistency=stale (etcd: serializable)")
	fs.IntVar(&c.concurrency, "c", 16, "concurrent workers, and persistent connections per endpoint")
	fs.Float64Var(&c.rate, "rate", 0, "open loop: total requests per second, latency measured from the intended send time; 0 = closed loop")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "measured duration")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load before measuring starts (not recorded)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "deadline for one request")
	fs.IntVar(&c.keys, "keys", 10000, "key space: keys PREFIX00000..PREFIX(keys-1), chosen uniformly")
	fs.StringVar(&c.keyPrefix, "key-prefix", "", "key prefix (default session- for the counter workload counter-; etcd: bench/ in front)")
	fs.IntVar(&c.valueSize, "value-size", 200, "bytes of JSON value per PUT (at least the size of the smallest object)")
	fs.Float64Var(&c.ttlSeconds, "ttl", 3600, "ttlSeconds on PUT and incr (0 = none; ignored by -target etcd, which needs leases)")
	fs.Int64Var(&c.incrBy, "incr-by", 1, "counter workload: the by of each incr")
	fs.IntVar(&c.txnOps, "txn-ops", 4, "txn workload: puts per transaction (distinct keys KEY/0..KEY/N-1)")
	fs.BoolVar(&c.preload, "preload", false, "before the run, PUT every key of the key space once")
	fs.BoolVar(&c.preloadOnly, "preload-only", false, "only preload (implies -preload); the report has no ops")
	fs.IntVar(&c.preloadConcurrency, "preload-c", 32, "workers for -preload")
	fs.StringVar(&c.output, "o", "text", "output: text (a table) or json")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0 = from the clock)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvbench [flags]\n\nLoad generator for quorumkv's HTTP API (and etcd's JSON gateway, for comparison).\n\nWorkloads:\n"+
			"  session      GET a random key, or with probability 1-read-fraction PUT it with TTL\n"+
			"  cache-aside  GET a random key; when it is missing (404), PUT it with TTL\n"+
			"  write        PUT a random key with TTL\n"+
			"  read         GET a random key; a miss counts as an error (use -preload)\n"+
			"  counter      POST /kv/items/{key}/incr on a random key\n"+
			"  txn          POST /kv/txn putting -txn-ops keys (KEY/0..) at one index, with TTL; compare with write\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see kvbench -h)", fs.Arg(0))
	}
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimRight(strings.TrimSpace(e), "/"); e != "" {
			c.endpoints = append(c.endpoints, e)
		}
	}
	if c.apiKey == "" && apiKeyFile != "" {
		b, err := os.ReadFile(apiKeyFile)
		if err != nil {
			return c, fmt.Errorf("-api-key-file: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		c.apiKey = strings.TrimSpace(first)
	}
	if c.apiKey == "" {
		c.apiKey = getenv("KV_API_KEY")
	}
	c.preload = c.preload || c.preloadOnly
	if c.keyPrefix == "" {
		c.keyPrefix = "session-"
		if c.workload == "counter" {
			c.keyPrefix = "counter-"
		}
		if c.target == "etcd" {
			c.keyPrefix = "bench/" + c.keyPrefix
		}
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch c.target {
	case "kv":
		if c.apiKey == "" {
			bad("-target kv needs an API key: -api-key, -api-key-file or KV_API_KEY")
		}
	case "etcd":
		if c.workload == "counter" {
			bad("-target etcd has no incr: the counter workload runs only against kv")
		}
		if c.workload == "txn" {
			bad("-target etcd: the txn workload runs only against kv")
		}
	default:
		bad("-target %q: want kv or etcd", c.target)
	}
	if len(c.endpoints) == 0 {
		bad("-endpoints is empty")
	}
	for _, e := range c.endpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("-endpoints: %q is not an http(s) base URL", e)
		}
	}
	if c.endpointMode != "pinned" && c.endpointMode != "roundrobin" {
		bad("-endpoint-mode %q: want pinned or roundrobin", c.endpointMode)
	}
	known := false
	for _, w := range workloads {
		known = known || w == c.workload
	}
	if !known {
		bad("-workload %q: want one of %s", c.workload, strings.Join(workloads, ", "))
	}
	if c.txnOps < 1 || c.txnOps > 128 {
		bad("-txn-ops %d: want 1..128", c.txnOps)
	}
	if c.readFraction < 0 || c.readFraction > 1 {
		bad("-read-fraction %v: want 0..1", c.readFraction)
	}
	if c.consistency != "" && c.consistency != "stale" {
		bad("-consistency %q: want empty or stale", c.consistency)
	}
	if c.concurrency < 1 || c.concurrency > 10000 {
		bad("-c %d: want 1..10000", c.concurrency)
	}
	if c.rate < 0 {
		bad("-rate %v: want >= 0", c.rate)
	}
	if c.duration <= 0 || c.warmup < 0 || c.timeout <= 0 {
		bad("-d and -timeout must be positive and -warmup not negative")
	}
	if c.keys < 1 {
		bad("-keys %d: want >= 1", c.keys)
	}
	if c.valueSize < 1 || c.valueSize > 64<<20 {
		bad("-value-size %d: want 1..64MiB", c.valueSize)
	}
	if c.ttlSeconds < 0 {
		bad("-ttl %v: want >= 0", c.ttlSeconds)
	}
	if c.preloadConcurrency < 1 {
		bad("-preload-c %d: want >= 1", c.preloadConcurrency)
	}
	if c.output != "text" && c.output != "json" {
		bad("-o %q: want text or json", c.output)
	}
	return errors.Join(errs...)
}

// mode names the load model for reports.
func (c config) mode() string {
	if c.rate > 0 {
		return "open"
	}
	return "closed"
}
