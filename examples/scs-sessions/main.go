// Command scs-sessions is an example web app whose alexedwards/scs sessions
// live in quorumkv (sessions/scsstore): any instance of the app, talking to
// any node, sees the same sessions, and they survive the loss of a node.
//
//   - POST /login?user=NAME renews the session token and stores NAME;
//   - GET /me answers the session's user, or 401;
//   - POST /logout destroys the session.
//
// Run a cluster (scripts/cluster.sh start), then:
//
//	export KV_ENDPOINTS=127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 KV_API_KEY=$(cat .cluster/api-key)
//	go run ./examples/scs-sessions -addr 127.0.0.1:8000
//	curl -c jar -X POST 'http://127.0.0.1:8000/login?user=alice'
//	curl -b jar http://127.0.0.1:8000/me
//
// KV_CACERT and the other variables of client.FromEnv configure TLS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/sessions/scsstore"
)

func newApp(sm *scs.SessionManager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "give ?user=NAME", http.StatusBadRequest)
			return
		}
		// A new token at login: a token known before it (fixation) is useless.
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user", user)
		fmt.Fprintf(w, "logged in as %s\n", user)
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		user := sm.GetString(r.Context(), "user")
		if user == "" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, user)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "logged out")
	})
	// LoadAndSave loads the session before the handler and commits it (with
	// the TTL scs computes from Lifetime and IdleTimeout) after.
	return sm.LoadAndSave(mux)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	lifetime := flag.Duration("lifetime", 24*time.Hour, "absolute session lifetime")
	idle := flag.Duration("idle", 30*time.Minute, "idle timeout: a session unused this long ends (0: none)")
	flag.Parse()
	cfg, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	kv, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()
	sm := scs.New()
	sm.Store = scsstore.New(kv, scsstore.WithPrefix("example-scs/"))
	sm.Lifetime, sm.IdleTimeout = *lifetime, *idle
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		log.Printf("session store: %v", err)
		http.Error(w, "the session store is unavailable; retry shortly", http.StatusServiceUnavailable)
	}

	srv := &http.Server{Addr: *addr, Handler: newApp(sm), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("scs-sessions example on http://%s, sessions in quorumkv at %v", *addr, cfg.Endpoints)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
