// Command session-store is an example web app that keeps its login sessions
// in quorumkv with a sliding expiry:
//
//   - POST /login (form field "user") creates a session with a random id,
//     create-only, expiring after the idle timeout, and sets the "sid" cookie;
//   - every authenticated request (GET /me) refreshes the expiry with PATCH,
//     so a session lives as long as it is used and ends after -idle without
//     requests, on every node of the cluster and across failover;
//   - POST /logout deletes the session.
//
// Run a cluster (scripts/cluster.sh start), then:
//
//	KV_API_KEY=$(cat .cluster/api-key) go run ./examples/session-store -addr 127.0.0.1:8000
//	curl -c jar -d user=alice http://127.0.0.1:8000/login
//	curl -b jar http://127.0.0.1:8000/me
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// session is the value stored at "session/<id>".
type session struct {
	UserID    string `json:"userId"`
	CreatedAt int64  `json:"createdAt"` // Unix ms
}

// app serves the routes; kv is shared by all requests.
type app struct {
	kv   *client.Client
	idle time.Duration // a session ends after this long without requests
}

func sessionKey(id string) string { return "session/" + id }

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /me", a.me)
	mux.HandleFunc("POST /logout", a.logout)
	return mux
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("user"))
	if user == "" {
		http.Error(w, "user is required", http.StatusBadRequest)
		return
	}
	// A real app checks a password here.
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	// Create-only: a (vanishingly unlikely) id collision fails instead of
	// taking over another user's session.
	_, err := a.kv.Put(r.Context(), sessionKey(id), session{UserID: user, CreatedAt: time.Now().UnixMilli()},
		client.TTL(a.idle), client.IfNoneMatch())
	if err != nil {
		storeError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "sid", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Write([]byte("welcome " + user + "\n"))
}

// current returns the request's session, refreshing its expiry (sliding
// TTL). ok is false when it answered 401 or an error itself.
func (a *app) current(w http.ResponseWriter, r *http.Request) (id string, s session, ok bool) {
	c, err := r.Cookie("sid")
	if err != nil || c.Value == "" {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return "", s, false
	}
	// PATCH first: it fails with not found when the session has expired, and
	// otherwise restarts the idle timeout without resending the value.
	if _, err := a.kv.Patch(r.Context(), sessionKey(c.Value), a.idle); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			http.Error(w, "session expired", http.StatusUnauthorized)
		} else {
			storeError(w, err)
		}
		return "", s, false
	}
	it, err := a.kv.Get(r.Context(), sessionKey(c.Value))
	if err == nil {
		err = it.Decode(&s)
	}
	if err != nil {
		if errors.Is(err, client.ErrNotFound) { // logged out between the two calls
			http.Error(w, "session expired", http.StatusUnauthorized)
		} else {
			storeError(w, err)
		}
		return "", s, false
	}
	return c.Value, s, true
}

func (a *app) me(w http.ResponseWriter, r *http.Request) {
	_, s, ok := a.current(w, r)
	if !ok {
		return
	}
	w.Write([]byte("you are " + s.UserID + "\n"))
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie("sid"); err == nil && c.Value != "" {
		if _, err := a.kv.Delete(r.Context(), sessionKey(c.Value)); err != nil {
			storeError(w, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: "sid", Value: "", Path: "/", MaxAge: -1})
	w.Write([]byte("bye\n"))
}

// storeError answers a quorumkv failure: 503 when the cluster is unavailable
// (after the client's retries), 500 otherwise.
func storeError(w http.ResponseWriter, err error) {
	log.Printf("session store: %v", err)
	if errors.Is(err, client.ErrUnavailable) {
		http.Error(w, "session store unavailable, try again", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	endpoints := flag.String("endpoints", envOr("KV_ENDPOINTS", "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"), "quorumkv node URLs")
	idle := flag.Duration("idle", 30*time.Minute, "sessions end after this long without requests")
	flag.Parse()

	kv, err := client.New(client.Config{Endpoints: strings.Split(*endpoints, ","), APIKey: os.Getenv("KV_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	a := &app{kv: kv, idle: *idle}
	srv := &http.Server{Addr: *addr, Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("session-store listening on http://%s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
