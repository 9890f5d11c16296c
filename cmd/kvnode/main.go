// Command kvnode runs one quorumkv node: the HTTP API, the peer port (raft and
// forwarding RPC) and the replicated store. It is the only place that reads
// flags and the environment; see `kvnode --help`.
package main

import (
	"context"
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

	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/transport"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
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
	n, err := start(o, logger, stderr)
	if err != nil {
		logger.Error("start failed", "err", err)
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 1
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		logger.Info("signal received; stopping", "signal", s.String())
	case err := <-n.httpErr:
		logger.Error("HTTP server failed", "err", err)
	}
	signal.Stop(sig)
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := n.stop(ctx); err != nil {
		logger.Error("unclean stop", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
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
	debug   *debugServer // nil unless --debug-addr
	// httpAddr is the address the API listens on (resolved when --http-addr has port 0).
	httpAddr string
}

func start(o options, logger *slog.Logger, stderr io.Writer) (*node, error) {
	peers, err := parsePeers(o.peers)
	if err != nil {
		return nil, err
	}
	key, generated, err := resolveAPIKey(o)
	if err != nil {
		return nil, err
	}
	if generated {
		fmt.Fprintf(stderr, "kvnode: no API key configured; generated one and saved it in %s/%s (shown only now):\n%s\n", o.dataDir, apiKeyFileName, key)
		logger.Warn("generated a new API key", "file", o.dataDir+"/"+apiKeyFileName)
	}

	mux, err := transport.Listen(transport.Config{
		BindAddr:      o.peerAddr,
		AdvertiseAddr: o.advertisePeerAddr,
		MaxFrameBytes: int(max(64<<20, 2*o.maxValueBytes+(1<<20))),
		Logger:        logger,
	})
	if err != nil {
		return nil, fmt.Errorf("peer port %s: %w", o.peerAddr, err)
	}
	st, err := store.Open(store.Config{
		NodeID:             o.id,
		DataDir:            o.dataDir,
		Bootstrap:          peers,
		HeartbeatTimeout:   o.heartbeatTimeout,
		ElectionTimeout:    o.electionTimeout,
		LeaderLeaseTimeout: min(o.heartbeatTimeout/2, 500*time.Millisecond),
		SnapshotThreshold:  o.snapshotThreshold,
		Logger:             logger,
	}, mux)
	if err != nil {
		mux.Close()
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		APIKey:         key,
		MaxValueBytes:  o.maxValueBytes,
		RequestTimeout: o.requestTimeout,
		Logger:         logger,
	}, st)
	if err != nil {
		st.Close()
		mux.Close()
		return nil, err
	}
	dbg, err := startDebug(o.debugAddr, logger)
	if err != nil {
		st.Close()
		mux.Close()
		return nil, fmt.Errorf("--debug-addr %s: %w", o.debugAddr, err)
	}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		dbg.stop()
		st.Close()
		mux.Close()
		return nil, fmt.Errorf("HTTP %s: %w", o.httpAddr, err)
	}
	n := &node{
		log:   logger,
		mux:   mux,
		store: st,
		http: &http.Server{
			Handler:           api,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       o.requestTimeout + 30*time.Second,
			WriteTimeout:      o.requestTimeout + 30*time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		httpErr:  make(chan error, 1),
		httpAddr: ln.Addr().String(),
		debug:    dbg,
	}
	go func() {
		if err := n.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.httpErr <- err
		}
	}()
	logger.Info("kvnode started", "http", ln.Addr().String(), "peer", mux.Addr(), "data_dir", o.dataDir)
	return n, nil
}

// stop shuts down in reverse order of start. A leader first hands leadership
// over, so the cluster keeps serving; in-flight requests then finish (they are
// forwarded to the new leader) before raft and the stores close.
func (n *node) stop(ctx context.Context) error {
	if err := n.store.TransferLeadership(ctx); err != nil {
		n.log.Warn("leadership transfer failed; stopping anyway", "err", err)
	}
	var errs []error
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
