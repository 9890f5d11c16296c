// Command gorilla-sessions is an example web app whose gorilla/sessions
// sessions live in quorumkv (sessions/gorillastore): any instance of the app,
// talking to any node, sees the same sessions, and they survive the loss of
// a node.
//
//   - POST /login?user=NAME starts a session for NAME (a signed cookie
//     holding only the session id);
//   - GET /me answers the session's user, or 401;
//   - POST /logout deletes the session.
//
// Run a cluster (scripts/cluster.sh start), then:
//
//	export KV_ENDPOINTS=127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 KV_API_KEY=$(cat .cluster/api-key)
//	SESSION_KEY=$(head -c 32 /dev/urandom | base64) go run ./examples/gorilla-sessions -addr 127.0.0.1:8000
//	curl -c jar -X POST 'http://127.0.0.1:8000/login?user=alice'
//	curl -b jar http://127.0.0.1:8000/me
//
// KV_CACERT and the other variables of client.FromEnv configure TLS.
// SESSION_KEY (base64, 32 or 64 bytes) signs the cookies: every instance of
// the app needs the same one.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/sessions/gorillastore"
)

const cookieName = "app-session"

func newApp(store *gorillastore.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "give ?user=NAME", http.StatusBadRequest)
			return
		}
		s, _ := store.Get(r, cookieName) // an unreadable old session just becomes a new one
		s.Values["user"] = user
		if err := s.Save(r, w); err != nil {
			http.Error(w, "saving the session: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "logged in as %s\n", user)
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, cookieName)
		if err != nil {
			http.Error(w, "loading the session: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		user, _ := s.Values["user"].(string)
		if user == "" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, user)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, cookieName)
		if err != nil {
			http.Error(w, "loading the session: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		s.Options.MaxAge = -1
		if err := s.Save(r, w); err != nil {
			http.Error(w, "deleting the session: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "logged out")
	})
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	maxAge := flag.Duration("max-age", 24*time.Hour, "session lifetime (the key's TTL in quorumkv)")
	flag.Parse()
	key, err := base64.StdEncoding.DecodeString(os.Getenv("SESSION_KEY"))
	if err != nil || (len(key) != 32 && len(key) != 64) {
		log.Fatal("SESSION_KEY must be 32 or 64 random bytes in base64: SESSION_KEY=$(head -c 32 /dev/urandom | base64)")
	}
	cfg, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	kv, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()
	store := gorillastore.New(kv, key)
	store.Prefix = "example-gorilla/"
	store.MaxAge(int(maxAge.Seconds()))

	srv := &http.Server{Addr: *addr, Handler: newApp(store), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("gorilla-sessions example on http://%s, sessions in quorumkv at %v", *addr, cfg.Endpoints)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
