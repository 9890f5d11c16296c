package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// debugServer serves net/http/pprof under /debug/pprof/ on its own listener
// (--debug-addr), never on the API port. It has no authentication, so it is
// off by default, binds loopback when the address names no host, and refuses
// any other interface unless --debug-allow-remote says so. It never shows a
// secret: /debug/pprof/cmdline is served redacted (see redactArgs), and
// neither expvar nor the environment is exposed.
type debugServer struct {
	srv  *http.Server
	addr string // resolved listen address
	done chan struct{}
}

// debugListenAddr is addr with an empty host replaced by loopback, so
// "--debug-addr :6060" means 127.0.0.1:6060, not every interface.
func debugListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// startDebug listens on addr and serves the profiles until stop. An empty
// addr starts nothing and returns a nil *debugServer, whose stop is a no-op.
// A listener that is not on a loopback address is closed again and refused
// unless allowRemote; with it, a warning says who can reach the profiles.
// argv is what /debug/pprof/cmdline shows, after redaction.
func startDebug(addr string, allowRemote bool, argv []string, logger *slog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	listenAddr, err := debugListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, err
	}
	// Judge the address actually bound: a host name may resolve anywhere.
	ip := ln.Addr().(*net.TCPAddr).IP
	if !ip.IsLoopback() {
		if !allowRemote {
			ln.Close()
			return nil, fmt.Errorf("%s is not a loopback address: the profiles are served without authentication and reveal memory contents and timings; bind 127.0.0.1 (or ::1), or pass --debug-allow-remote if every host that can reach it is trusted", ln.Addr())
		}
		logger.Warn("SERVING /debug/pprof WITHOUT AUTHENTICATION ON A NON-LOOPBACK ADDRESS (--debug-allow-remote): anyone who reaches it can read profiles of this process", "debug_addr", ln.Addr().String())
	}
	shown := redactArgs(argv)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(shown, "\x00"))
	})
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

// secretFlags are the flags whose values are secrets. Flags naming a file
// (--api-key-file, --peer-key) are not: their values are paths.
var secretFlags = map[string]bool{"api-key": true}

// redactedValue replaces a secret flag's value wherever kvnode shows its
// command line.
const redactedValue = "[REDACTED]"

// redactArgs returns argv with the value of every secret flag replaced by
// redactedValue, in each form the flag package accepts: -name value,
// --name value, -name=value and --name=value. Everything after a "--"
// terminator is kept: the flag package does not parse it.
func redactArgs(argv []string) []string {
	out := append([]string(nil), argv...)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, _, hasValue := strings.Cut(name, "=")
		if !secretFlags[name] {
			continue
		}
		if hasValue {
			out[i] = a[:strings.IndexByte(a, '=')+1] + redactedValue
		} else if i+1 < len(out) {
			out[i+1] = redactedValue
			i++
		}
	}
	return out
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
