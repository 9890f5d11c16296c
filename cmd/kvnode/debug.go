package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer serves net/http/pprof under /debug/pprof/ on its own listener
// (--debug-addr), never on the API port: it has no authentication, so it is
// off by default and meant for a loopback address.
type debugServer struct {
	srv  *http.Server
	addr string // resolved listen address
	done chan struct{}
}

// startDebug listens on addr and serves the profiles until stop. An empty
// addr starts nothing and returns a nil *debugServer, whose stop is a no-op.
func startDebug(addr string, logger *slog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		// No WriteTimeout: /debug/pprof/profile?seconds=N answers after N seconds.
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("debug server failed", "err", err)
		}
	}()
	logger.Warn("serving /debug/pprof without authentication", "debug_addr", d.addr)
	return d, nil
}

// stop closes the listener and every open profile request, then waits for
// the serving goroutine.
func (d *debugServer) stop() {
	if d == nil {
		return
	}
	_ = d.srv.Close()
	<-d.done
}
