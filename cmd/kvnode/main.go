// Command kvnode runs one quorumkv node: the HTTP API, the peer port (raft and
// forwarding RPC) and the replicated store. It is the only place that reads
// flags and the environment; see `kvnode --help`.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/internal/version"
	"github.com/quorumkv/quorumkv/pki"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/watch"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "certs":
			os.Exit(runCerts(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "health":
			os.Exit(runHealth(os.Args[2:], os.Getenv, os.Stderr))
		case "restore":
			os.Exit(runRestore(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "--version", "-version", "version":
			printVersion(os.Stdout)
			os.Exit(0)
		}
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	// Signals are taken over before anything slow (raft opens its log and
	// replays it in start): an early SIGHUP must not kill the process, as it
	// would by default, and an early SIGTERM must still stop it cleanly.
	// Both wait here until the node has started; one pending reload covers
	// any number of HUPs, so a full hup channel drops the extras.
	hup := make(chan os.Signal, 1)
	stopSig := make(chan os.Signal, 2)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(stopSig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(hup)
	defer signal.Stop(stopSig)

	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 2
	}
	logger, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 2
	}
	logger.Info("kvnode starting", "component", "kvnode", "pid", os.Getpid(), "version", version.Get().String())
	gc := startGCGovernor(o.gcHeadroomMB<<20, o.gcMinPercent, getenv, logger.With("component", "gc"))
	defer gc.stopGC()
	n, err := start(o, logger, stderr)
	logger = logger.With("component", "kvnode") // kvnode's own lines from here on
	if err != nil {
		logger.Error("start failed", "err", err)
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 1
	}

wait:
	for {
		select {
		case <-hup:
			n.creds.reload(logger)
		case s := <-stopSig:
			logger.Info("signal received; stopping", "signal", s.String())
			break wait
		case err := <-n.httpErr:
			logger.Error("HTTP server failed", "err", err)
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := n.stop(ctx); err != nil {
		logger.Error("unclean stop", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// printVersion writes what kvnode --version prints: the build, then the
// formats of replicated state it reads (from the lower version) and writes.
func printVersion(w io.Writer) {
	f := fsm.SupportedFormats()
	fmt.Fprintf(w, "kvnode %s\nlog codec %d-%d, ops %s, snapshot format %d-%d, backup format %d-%d\n",
		version.Get(), f.Codec.Min, f.Codec.Max, f.Ops, f.Snapshot.Min, f.Snapshot.Max, f.Backup.Min, f.Backup.Max)
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.logFormat {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want json or text", o.logFormat)
	}
	return slog.New(h).With("node", o.id), nil
}

// node is a running kvnode, wired in start order: peer port, store, HTTP.
type node struct {
	log     *slog.Logger
	mux     *transport.Mux
	store   *store.Store
	http    *http.Server
	httpErr chan error
	creds   credentials
	debug   *debugServer // nil unless --debug-addr
	// httpAddr is the address the API listens on (resolved when --http-addr has port 0).
	httpAddr string
	// stopJoin ends the join loop (join.go) and waits for it; a no-op when
	// the node is not joining.
	stopJoin func()
}

// start wires the node. logger carries the node id; each component adds its
// own component attribute (transport, store, raft, httpapi; kvnode for the
// lines written here, http for the HTTP server's own errors).
func start(o options, nodeLogger *slog.Logger, stderr io.Writer) (*node, error) {
	logger := nodeLogger.With("component", "kvnode")
	peers, err := parsePeers(o.peers)
	if err != nil {
		return nil, err
	}
	creds, err := loadCredentials(o, logger, stderr)
	if err != nil {
		return nil, err
	}

	peerTLS, err := loadPeerTLS(o)
	if err != nil {
		return nil, err
	}
	if peerTLS == nil {
		logger.Warn("the peer port runs WITHOUT mutual TLS (--insecure-peer): anyone who can reach it can join the cluster, append to the raft log and rewrite every key; use it only on an isolated network for tests")
	}
	var certs *certReloader
	if o.tlsCert != "" || o.tlsKey != "" {
		if o.tlsCert == "" || o.tlsKey == "" {
			return nil, errors.New("HTTPS needs both --tls-cert and --tls-key")
		}
		if certs, err = newCertReloader(o.tlsCert, o.tlsKey, logger); err != nil {
			return nil, err
		}
	}

	joins, err := joinURLs(o.join)
	if err != nil {
		return nil, err
	}
	// The HTTP listener comes first: its resolved address is what the node
	// advertises to the cluster. It serves nothing until the end of start.
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP %s: %w", o.httpAddr, err)
	}
	mux, err := transport.Listen(transport.Config{
		TLS:           peerTLS,
		BindAddr:      o.peerAddr,
		AdvertiseAddr: o.advertisePeerAddr,
		// Frames always carry a write of the largest legal value.
		MaxFrameBytes: max(transport.DefaultMaxFrameBytes, store.FrameBytesFor(o.maxValueBytes)),
		Logger:        nodeLogger,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("peer port %s: %w", o.peerAddr, err)
	}
	metrics := newMetricsRegistry()
	st, err := store.Open(store.Config{
		NodeID:                  o.id,
		DataDir:                 o.dataDir,
		RaftLog:                 o.raftLog,
		Bootstrap:               peers,
		HeartbeatTimeout:        o.heartbeatTimeout,
		ElectionTimeout:         o.electionTimeout,
		LeaderLeaseTimeout:      min(o.heartbeatTimeout/2, 500*time.Millisecond),
		SnapshotThreshold:       o.snapshotThreshold,
		DisableWriteBatching:    !o.writeBatching,
		MaxWriteBatchesInFlight: o.writeBatches,
		MaxKeys:                 o.maxKeys,
		MaxDataBytes:            o.maxDataBytes,
		IdempotencyMaxBytes:     o.idemMaxBytes,
		Clock:                   testClock(o, logger),
		MaxClockOffset:          o.maxClockOffset,
		Join:                    len(joins) > 0,
		HTTPAddr:                advertisedHTTPAddr(o, ln),
		MaxValueBytes:           o.maxValueBytes,
		MaxTxnOps:               o.maxTxnOps,
		MaxTxnChecks:            o.maxTxnChecks,
		Watch: watch.Config{MaxEntries: o.watchHistoryEntries, MaxBytes: o.watchHistoryBytes,
			MaxWatchers: o.watchMaxWatchers, WatcherBuffer: o.watchBuffer},
		// Membership RPCs need a member-authenticated connection: the
		// identity peer TLS verified (transport.PeerID). Only a node run
		// with --insecure-peer serves them (and all else) unauthenticated.
		PeerAuth:                  transport.PeerID,
		AllowUnauthenticatedPeers: peerTLS == nil,
		InsecurePeer:              peerTLS == nil,
		Logger:                    nodeLogger,
		Metrics:                   metrics,
		ReportMetrics:             metrics,
	}, mux)
	if err != nil {
		ln.Close()
		mux.Close()
		return nil, err
	}
	metrics.MustRegister(applyLagGauge(st))
	api, err := httpapi.New(httpapi.Config{
		Keys:            creds.keys, // the single admin key too: reload may revoke it
		InsecureNoAuth:  creds.insecure,
		InsecurePeer:    peerTLS == nil,
		MaxValueBytes:   o.maxValueBytes,
		MaxTxnOps:       o.maxTxnOps,
		MaxTxnChecks:    o.maxTxnChecks,
		MaxListBytes:    o.maxListBytes,
		MaxRestoreBytes: o.maxRestoreBytes,
		RequestTimeout:  o.requestTimeout,
		Logger:          nodeLogger,
		RequestLog:      httpapi.RequestLogMode(o.logRequests),
		Metrics:         metrics,
		MetricsPublic:   o.metricsPublic,
		Watch:           httpapi.WatchConfig{MaxDuration: o.watchMaxDuration},
	}, st)
	if err != nil {
		ln.Close()
		st.Close()
		mux.Close()
		return nil, err
	}
	dbg, err := startDebug(o.debugAddr, o.debugAllowRemote, os.Args, logger)
	if err != nil {
		st.Close()
		mux.Close()
		ln.Close()
		return nil, fmt.Errorf("--debug-addr %s: %w", o.debugAddr, err)
	}
	n := &node{
		log:   logger,
		mux:   mux,
		store: st,
		http: &http.Server{
			Handler:           httpapi.LimitConcurrency(api, o.maxConcurrent),
			ReadHeaderTimeout: o.headerTimeout,
			ReadTimeout:       o.requestTimeout + 30*time.Second,
			WriteTimeout:      o.requestTimeout + 30*time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(nodeLogger.With("component", "http").Handler(), slog.LevelWarn),
		},
		httpErr:  make(chan error, 1),
		creds:    creds,
		httpAddr: ln.Addr().String(),
		stopJoin: func() {},
		debug:    dbg,
	}
	if certs != nil {
		n.http.TLSConfig = httpsConfig(certs)
		ln = tls.NewListener(ln, n.http.TLSConfig)
	}
	go func() {
		if err := n.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.httpErr <- err
		}
	}()
	if st.Joining() {
		if creds.apiKey == "" && !creds.insecure {
			n.stop(context.Background())
			return nil, errors.New("--join authenticates to the cluster with --api-key (or --api-key-file), which must be an admin key of the cluster")
		}
		client, err := joinClient(o)
		if err != nil {
			n.stop(context.Background())
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			joinLoop(ctx, client, joins, creds.apiKey, joinBody{ID: o.id, PeerAddr: st.PeerAddr(), HTTPAddr: advertisedHTTPAddr(o, ln)}, logger.With("component", "join"))
		}()
		n.stopJoin = func() { cancel(); <-done }
	}
	logger.Info("kvnode started", "http", ln.Addr().String(), "https", certs != nil, "peer", mux.Addr(), "peer_mtls", peerTLS != nil, "insecure_peer", peerTLS == nil, "data_dir", o.dataDir)
	return n, nil
}

// loadPeerTLS returns the peer port's mutual TLS. A node refuses to start
// without it unless --insecure-peer says so (then it returns nil: plain TCP).
func loadPeerTLS(o options) (*transport.PeerTLS, error) {
	some := o.peerCA != "" || o.peerCert != "" || o.peerKey != ""
	switch {
	case o.insecurePeer && some:
		return nil, errors.New("--insecure-peer cannot be combined with --peer-ca, --peer-cert or --peer-key: choose mutual TLS or an unauthenticated peer port")
	case o.insecurePeer:
		return nil, nil
	case !some:
		return nil, errors.New("the peer port needs mutual TLS: set --peer-ca, --peer-cert and --peer-key (KV_PEER_CA, KV_PEER_CERT, KV_PEER_KEY; `kvnode certs` writes a development set), " +
			"or pass --insecure-peer (KV_INSECURE_PEER=true) to run it unauthenticated, which lets anyone who can reach it join the cluster and rewrite its data")
	case o.peerCA == "" || o.peerCert == "" || o.peerKey == "":
		return nil, errors.New("peer mutual TLS needs all of --peer-ca, --peer-cert and --peer-key")
	}
	self := pki.Identity{Cluster: o.clusterName, Node: o.id}
	if err := self.Validate(); err != nil {
		return nil, fmt.Errorf("--cluster-name/--id: %w", err)
	}
	return transport.LoadPeerTLS(o.peerCA, o.peerCert, o.peerKey, self)
}

// stop shuts down in reverse order of start. A leader first hands leadership
// over, so the cluster keeps serving; in-flight requests then finish (they are
// forwarded to the new leader) before raft and the stores close.
func (n *node) stop(ctx context.Context) error {
	n.stopJoin()
	if err := n.store.TransferLeadership(ctx); err != nil {
		n.log.Warn("leadership transfer failed; stopping anyway", "err", err)
	}
	var errs []error
	// Watch streams and blocking reads never go idle on their own: end them
	// (each stream gets a "closed" event, shutting_down) so Shutdown can finish.
	n.store.CloseWatches()
	if err := n.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
	}
	n.debug.stop()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store close: %w", err))
	}
	if err := n.mux.Close(); err != nil {
		errs = append(errs, fmt.Errorf("peer port close: %w", err))
	}
	return errors.Join(errs...)
}
