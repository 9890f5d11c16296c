package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/pki"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/watch"
)

// defaultMaxDataBytes is --max-data-bytes' default: 2 GiB of keys and values,
// etcd's default backend quota. Every node holds the whole data set in memory
// (about 300 bytes of index per key on top of the data) and a snapshot on
// disk, so the default stops a runaway writer well before it exhausts a
// typical node, and is generous for sessions and cache entries. Keys are not
// limited by default: what most keys cost is their size, which this quota
// measures; the fixed cost per key dominates only for very many tiny keys,
// and --max-keys is there for that.
const defaultMaxDataBytes = 2 << 30

// raftLogHelp is --raft-log's help text.
const raftLogHelp = "raft log store of a new data dir: bolt (raft-boltdb, two fsyncs per append) or wal (raft-wal, one fsync per append; BENCHMARKS.md compares them); empty = the store the data dir already has, or " +
	store.DefaultRaftLog + " for a new one. A data dir keeps the store it was created with: naming the other one is a startup error; to move a node, replace it (remove, wipe the data dir, rejoin; see docs/raft-log.md)"

// options is everything kvnode reads from its command line and environment.
type options struct {
	id                string
	httpAddr          string
	peerAddr          string
	advertisePeerAddr string
	dataDir           string
	peers             string
	apiKey            string
	apiKeyFile        string
	maxValueBytes     int64
	maxTxnOps         int
	maxTxnChecks      int
	maxListBytes      int64
	maxKeys           int64
	maxDataBytes      int64
	maxRestoreBytes   int64
	requestTimeout    time.Duration
	shutdownTimeout   time.Duration
	heartbeatTimeout  time.Duration
	electionTimeout   time.Duration
	snapshotThreshold uint64
	writeBatching     bool
	writeBatches      int
	idemMaxBytes      int64
	logLevel          string
	logFormat         string
	peerCA            string
	peerCert          string
	peerKey           string
	clusterName       string
	insecurePeer      bool
	tlsCert           string
	tlsKey            string
	maxConcurrent     int
	apiKeysFile       string
	insecureNoAuth    bool
	headerTimeout     time.Duration
	metricsPublic     bool
	logRequests       string
	// testClockOffset shifts this node's clock (TEST ONLY; only in the
	// testclock build, see testflags.go).
	testClockOffset   time.Duration
	maxClockOffset    time.Duration
	join              string
	advertiseHTTPAddr string
	debugAddr         string
	debugAllowRemote  bool
	// apiKeyOnCommandLine: --api-key was given as a flag (visible in ps),
	// not through KV_API_KEY.
	apiKeyOnCommandLine bool
	gcHeadroomMB        uint64
	raftLog             string
	gcMinPercent        int
	// watch: the change history and watch-stream bounds (package watch,
	// httpapi.WatchConfig).
	watchMaxWatchers    int
	watchHistoryEntries int
	watchHistoryBytes   int64
	watchBuffer         int
	watchMaxDuration    time.Duration
}

// parseFlags reads args, then fills every flag not given on the command line
// from the environment variable KV_<NAME> (upper case, dashes as underscores).
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.id, "id", "n1", "this node's unique, stable raft ID")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on")
	fs.StringVar(&o.peerAddr, "peer-addr", "127.0.0.1:9080", "address the peer port (raft + forwarding) listens on")
	fs.StringVar(&o.advertisePeerAddr, "advertise-peer-addr", "", "peer address other nodes dial (default: --peer-addr)")
	fs.StringVar(&o.dataDir, "data-dir", "data", "directory for the raft log, snapshots and the generated API key")
	fs.StringVar(&o.peers, "peers", "", "initial voters `id=host:port,...` (this node included); used only to bootstrap a data dir with no raft state; empty = single-node cluster")
	fs.StringVar(&o.apiKey, "api-key", "", "API key clients must send as 'Authorization: Bearer KEY' (prefer --api-key-file or KV_API_KEY: flags show in ps)")
	fs.StringVar(&o.apiKeyFile, "api-key-file", "", "file whose first line is the API key")
	fs.StringVar(&o.apiKeysFile, "api-keys-file", "", "scoped API keys: JSON or 'name:scope:key' lines (scope read, write or admin; key may be sha256:<hex digest>); reloaded on SIGHUP")
	fs.BoolVar(&o.insecureNoAuth, "insecure-no-auth", false, "serve the API WITHOUT authentication (test setups only; logged as a warning and shown in /cluster/status)")
	fs.Int64Var(&o.maxValueBytes, "max-value-bytes", 1<<20, "largest accepted value (compact JSON bytes)")
	fs.IntVar(&o.maxTxnOps, "max-txn-ops", store.DefaultMaxTxnItems, fmt.Sprintf("most operations in one POST /kv/txn (1..%d)", store.MaxTxnItems))
	fs.IntVar(&o.maxTxnChecks, "max-txn-checks", store.DefaultMaxTxnItems, fmt.Sprintf("most checks in one POST /kv/txn (1..%d)", store.MaxTxnItems))
	fs.Int64Var(&o.maxListBytes, "max-list-bytes", httpapi.DefaultMaxListBytes, "byte budget of one GET /kv/items page: the page ends early with a cursor once its body would exceed it (one item is always returned)")
	fs.Int64Var(&o.maxKeys, "max-keys", 0, "storage quota: once this many keys are stored, writes that create a key get 507 insufficient_storage (0 = no limit)")
	fs.Int64Var(&o.maxDataBytes, "max-data-bytes", defaultMaxDataBytes, "storage quota: writes that would take the stored keys plus values past this many bytes get 507 insufficient_storage (0 = no limit); the data set is held in memory on every node")
	fs.Int64Var(&o.maxRestoreBytes, "max-restore-bytes", 1<<30, "largest backup accepted by POST /admin/restore (it is buffered in --data-dir before it is verified)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "deadline for one API request, including waiting for a leader")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful stop (SIGTERM) may take")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", time.Second, "raft: follower waits this long without a leader before an election")
	fs.DurationVar(&o.electionTimeout, "election-timeout", time.Second, "raft: candidate waits this long for votes")
	fs.StringVar(&o.raftLog, "raft-log", "", raftLogHelp)
	fs.Uint64Var(&o.snapshotThreshold, "snapshot-threshold", store.DefaultConfig().SnapshotThreshold, "raft: log entries between snapshots")
	fs.BoolVar(&o.writeBatching, "write-batching", true, "leader packs concurrent writes into one raft entry; set false while rolling-upgrading from a version without write batching (its nodes cannot apply a batch)")
	fs.IntVar(&o.writeBatches, "write-batches-in-flight", store.DefaultConfig().MaxWriteBatchesInFlight, "write batches the leader may have proposed and not yet applied")
	fs.Int64Var(&o.idemMaxBytes, "idempotency-max-bytes", store.DefaultIdempotencyMaxBytes, "budget of the replicated Idempotency-Key table in bytes (about 290 per UUID-sized key: 64 MiB holds 10 minutes of ~390 new keys a second); while this node leads, a new key beyond it gets 503 idempotency_table_full, since keys are never forgotten inside their 10-minute window")
	fs.StringVar(&o.peerCA, "peer-ca", "", "cluster CA certificate (PEM): with --peer-cert and --peer-key, the peer port runs mutual TLS 1.3")
	fs.StringVar(&o.peerCert, "peer-cert", "", "this node's certificate (PEM) for the peer port, signed by --peer-ca")
	fs.StringVar(&o.peerKey, "peer-key", "", "the key of --peer-cert (PEM)")
	fs.StringVar(&o.clusterName, "cluster-name", pki.DefaultClusterName, "this cluster's name: peer certificates must carry the identity quorumkv://<cluster-name>/node/<id>, so a certificate the same CA issued to another cluster or workload is refused")
	fs.BoolVar(&o.insecurePeer, "insecure-peer", false, "run the peer port WITHOUT mutual TLS: anyone who can reach it can join the cluster and rewrite its data (isolated tests only; logged as a warning and shown in /cluster/status)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "certificate (PEM) for HTTPS on --http-addr; reloaded when the file changes")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the key of --tls-cert (PEM)")
	fs.IntVar(&o.maxConcurrent, "max-concurrent-requests", 4096, "requests served at once; more are answered 503 overloaded with Retry-After (0 = no limit)")
	fs.DurationVar(&o.headerTimeout, "http-header-timeout", 5*time.Second, "a client must send its request headers (and finish the TLS handshake) within this time")
	fs.StringVar(&o.join, "join", "", "`URL[,URL...]` of any cluster member's HTTP API: a node with no raft state does not bootstrap but asks the cluster to add it (with the API key), retrying until it is added; ignored once the node has raft state")
	fs.StringVar(&o.advertiseHTTPAddr, "advertise-http-addr", "", "HTTP API URL other nodes and operators see in GET /cluster/nodes (default: http(s)://--http-addr)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "json", "json or text")
	fs.StringVar(&o.logRequests, "log-requests", string(httpapi.RequestLogErrors), "requests logged at info: errors (5xx, 401/403, slower than 1s), all, or off; the others are logged at debug")
	fs.BoolVar(&o.metricsPublic, "metrics-public", false, "serve GET /metrics without an API key (for scrapers that cannot send one); otherwise it needs the read scope")
	fs.Uint64Var(&o.gcHeadroomMB, "gc-headroom-mb", 64, "let the heap grow this many MiB beyond the live heap between collections: GOGC is lowered from 100 as the live heap passes this size, down to --gc-min-percent; 0 = Go's default pacing; ignored when GOGC is set")
	fs.IntVar(&o.gcMinPercent, "gc-min-percent", defaultGCMinPercent, "the lowest GOGC --gc-headroom-mb sets (1-100): with a live heap over headroom*100/this, the heap grows by this percentage of it between collections. Lower saves memory at a large data set and costs write tail latency (each collection marks the whole data set)")
	fs.DurationVar(&o.maxClockOffset, "max-clock-offset", store.DefaultConfig().MaxClockOffset, "largest clock offset from a majority of the voters under which this node leads and stamps time (TTLs, expirations, dedup window); measured continuously over the peer port. Use the same value on every node")
	wd := watch.DefaultConfig()
	fs.IntVar(&o.watchMaxWatchers, "watch-max-watchers", wd.MaxWatchers, "watch streams and blocking reads this node serves at once; more are answered 503 overloaded (1-1000000)")
	fs.IntVar(&o.watchHistoryEntries, "watch-history-entries", wd.MaxEntries, "changes this node keeps for watches to resume from (1-100000000); an older fromIndex gets compacted")
	fs.Int64Var(&o.watchHistoryBytes, "watch-history-bytes", wd.MaxBytes, fmt.Sprintf("bytes of keys and values (plus %d per change) the watch history may hold, the oldest evicted first (at least 65536)", watch.ChangeOverhead))
	fs.IntVar(&o.watchBuffer, "watch-buffer", wd.WatcherBuffer, "changes a watch stream may fall behind the newest before it is closed as lagging (1 to --watch-history-entries)")
	fs.DurationVar(&o.watchMaxDuration, "watch-max-duration", httpapi.DefaultWatchMaxDuration, "longest watch stream: it then ends with a closed event and the index to resume from (1s-24h)")
	registerTestFlags(fs, &o)
	fs.StringVar(&o.debugAddr, "debug-addr", "", "if set, serve net/http/pprof (/debug/pprof/, no authentication) on this separate address, e.g. 127.0.0.1:6060 (no host: loopback)")
	fs.BoolVar(&o.debugAllowRemote, "debug-allow-remote", false, "let --debug-addr bind a non-loopback address (the profiles are unauthenticated; logged as a warning)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode [flags]\n       kvnode --version         (version and supported formats)\n       kvnode certs --help      (development TLS certificates)\n       kvnode health --help     (container health probe)\n       kvnode restore --help    (seed a data dir from a backup, offline)\n\nRuns one quorumkv node. Every flag can also be set with the environment\nvariable KV_<FLAG> (e.g. KV_HTTP_ADDR, KV_API_KEY); a flag given on the\ncommand line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see kvnode --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.apiKeyOnCommandLine = set["api-key"]
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := "KV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if o.idemMaxBytes <= 0 {
		return o, fmt.Errorf("--idempotency-max-bytes %d: want a positive number of bytes", o.idemMaxBytes)
	}
	switch o.raftLog {
	case "", store.RaftLogBolt, store.RaftLogWAL:
	default:
		return o, fmt.Errorf("--raft-log %q: want %s or %s", o.raftLog, store.RaftLogBolt, store.RaftLogWAL)
	}
	if o.gcMinPercent < 1 || o.gcMinPercent > 100 {
		return o, fmt.Errorf("--gc-min-percent %d: want 1 to 100 (the lowest GOGC the headroom governor may set)", o.gcMinPercent)
	}
	if err := checkWatchFlags(o); err != nil {
		return o, err
	}
	switch httpapi.RequestLogMode(o.logRequests) {
	case httpapi.RequestLogErrors, httpapi.RequestLogAll, httpapi.RequestLogOff:
	default:
		return o, fmt.Errorf("--log-requests %q: want errors, all or off", o.logRequests)
	}
	return o, nil
}

// checkWatchFlags range-checks the watch bounds.
func checkWatchFlags(o options) error {
	switch {
	case o.watchMaxWatchers < 1 || o.watchMaxWatchers > 1_000_000:
		return fmt.Errorf("--watch-max-watchers %d: want 1 to 1000000 concurrent watch streams and blocking reads", o.watchMaxWatchers)
	case o.watchHistoryEntries < 1 || o.watchHistoryEntries > 100_000_000:
		return fmt.Errorf("--watch-history-entries %d: want 1 to 100000000 changes", o.watchHistoryEntries)
	case o.watchHistoryBytes < 64<<10:
		return fmt.Errorf("--watch-history-bytes %d: want at least 65536 bytes", o.watchHistoryBytes)
	case o.watchBuffer < 1 || o.watchBuffer > o.watchHistoryEntries:
		return fmt.Errorf("--watch-buffer %d: want 1 to --watch-history-entries (%d): a watcher cannot be further behind than the history reaches", o.watchBuffer, o.watchHistoryEntries)
	case o.watchMaxDuration < time.Second || o.watchMaxDuration > 24*time.Hour:
		return fmt.Errorf("--watch-max-duration %s: want 1s to 24h", o.watchMaxDuration)
	}
	return nil
}

// parsePeers parses "id=host:port,id=host:port".
func parsePeers(s string) ([]store.Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var peers []store.Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not id=host:port", part)
		}
		peers = append(peers, store.Peer{ID: id, Addr: addr})
	}
	return peers, nil
}

// resolveAPIKey returns the configured key, or the key kept in the data dir,
// generating it on first start. generated is true when a new key was created.
func resolveAPIKey(o options) (key string, generated bool, err error) {
	if o.apiKey != "" && o.apiKeyFile != "" {
		return "", false, errors.New("set only one of --api-key and --api-key-file")
	}
	if o.apiKey != "" {
		return o.apiKey, false, nil
	}
	if o.apiKeyFile != "" {
		b, err := os.ReadFile(o.apiKeyFile)
		if err != nil {
			return "", false, fmt.Errorf("read --api-key-file: %w", err)
		}
		key, _, _ = strings.Cut(string(b), "\n")
		key = strings.TrimSpace(key)
		if key == "" {
			return "", false, fmt.Errorf("--api-key-file %s: first line is empty", o.apiKeyFile)
		}
		return key, false, nil
	}
	return loadOrCreateKey(o.dataDir)
}
