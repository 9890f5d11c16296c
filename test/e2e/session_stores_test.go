package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	gsessions "github.com/gorilla/sessions"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/sessions/gorillastore"
	"github.com/quorumkv/quorumkv/sessions/scsstore"
)

// sessionStoresOnCluster drives the gorilla/sessions and scs stores through
// the libraries' own session handling on the running three-node cluster of
// script (nodes are its HTTP URLs), with one app instance per node: log in
// through one, make requests through the others, across a SIGKILL of the
// leader, log out, and let a short-lived session expire (its key must vanish
// from the cluster: the TTL is the library's expiry). It shares the
// cluster of the client failover test, whose end it runs at.
func sessionStoresOnCluster(t *testing.T, script func(...string) string, nodes []string, key string) {
	// kvFor is a client that starts on node i (and fails over to the others).
	kvFor := func(i int) *client.Client {
		eps := append(append([]string(nil), nodes[i:]...), nodes[:i]...)
		c, err := client.New(client.Config{Endpoints: eps, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	kv := kvFor(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := kv.Status(ctx)
	cancel()
	if err != nil || st.LeaderID == "" {
		t.Fatalf("no leader: %+v %v", st, err)
	}
	leader := strings.TrimPrefix(st.LeaderID, "n")

	hashKey := []byte("0123456789abcdef0123456789abcdef")
	blockKey := []byte("fedcba9876543210")
	gorillaApp := func(i int, maxAge int) http.Handler {
		store := gorillastore.New(kvFor(i), hashKey, blockKey)
		store.Prefix = "gorilla/"
		store.MaxAge(maxAge)
		return sessionApp{
			login: func(w http.ResponseWriter, r *http.Request, user string) error {
				s, _ := store.Get(r, "app")
				s.Values["user"] = user
				return s.Save(r, w)
			},
			user: func(r *http.Request) (string, error) {
				s, err := store.Get(r, "app")
				u, _ := s.Values["user"].(string)
				return u, err
			},
			logout: func(w http.ResponseWriter, r *http.Request) error {
				s, err := store.Get(r, "app")
				if err != nil {
					return err
				}
				s.Options.MaxAge = -1
				return s.Save(r, w)
			},
		}
	}
	scsApp := func(i int, lifetime time.Duration) http.Handler {
		sm := scs.New()
		sm.Store = scsstore.New(kvFor(i), scsstore.WithPrefix("scs/"))
		sm.Lifetime = lifetime
		sm.Cookie.Name = "scs"
		sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) { http.Error(w, err.Error(), 500) }
		return sm.LoadAndSave(sessionApp{
			login: func(w http.ResponseWriter, r *http.Request, user string) error {
				if err := sm.RenewToken(r.Context()); err != nil {
					return err
				}
				sm.Put(r.Context(), "user", user)
				return nil
			},
			user:   func(r *http.Request) (string, error) { return sm.GetString(r.Context(), "user"), nil },
			logout: func(w http.ResponseWriter, r *http.Request) error { return sm.Destroy(r.Context()) },
		})
	}

	for _, lib := range []struct {
		name   string
		prefix string
		app    func(node int, short bool) http.Handler
	}{
		{"gorilla", "gorilla/", func(n int, short bool) http.Handler {
			if short {
				return gorillaApp(n, 2)
			}
			return gorillaApp(n, 3600)
		}},
		{"scs", "scs/", func(n int, short bool) http.Handler {
			if short {
				return scsApp(n, 2*time.Second)
			}
			return scsApp(n, time.Hour)
		}},
	} {
		t.Run(lib.name, func(t *testing.T) {
			apps := make([]*browser, 3)
			for i := range apps {
				srv := httptest.NewServer(lib.app(i, false))
				t.Cleanup(srv.Close)
				apps[i] = &browser{t: t, url: srv.URL}
			}
			jar, _ := cookiejar.New(nil) // one browser: cookies for 127.0.0.1, whatever the port
			for _, a := range apps {
				a.c = &http.Client{Jar: jar, Timeout: 40 * time.Second}
			}
			apps[0].expect("POST", "/login?user=alice", 200, "")
			apps[1].expect("GET", "/me", 200, "alice")
			apps[2].expect("GET", "/me", 200, "alice")
			if stored := countKeys(t, kv, lib.prefix); stored != 1 {
				t.Fatalf("%d sessions stored under %s, want 1", stored, lib.prefix)
			}
			if lib.name == "gorilla" { // the first subtest kills the leader; the second runs on two nodes
				script("kill", leader)
			}
			for _, a := range apps {
				a.expect("GET", "/me", 200, "alice") // every app, its first node dead or not
			}
			apps[2].expect("POST", "/logout", 200, "")
			apps[0].expect("GET", "/me", 401, "")
			if stored := countKeys(t, kv, lib.prefix); stored != 0 {
				t.Fatalf("%d sessions left under %s after logout", stored, lib.prefix)
			}

			// A session of 2 s: live at once, then gone from the cluster.
			short := httptest.NewServer(lib.app(1, true))
			t.Cleanup(short.Close)
			b := &browser{t: t, url: short.URL, c: apps[0].c}
			b.expect("POST", "/login?user=bob", 200, "")
			b.expect("GET", "/me", 200, "bob")
			deadline := time.Now().Add(15 * time.Second)
			for countKeys(t, kv, lib.prefix) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("a 2 s session still stored under %s after 15 s", lib.prefix)
				}
				time.Sleep(200 * time.Millisecond)
			}
			b.expect("GET", "/me", 401, "")
		})
	}
}

// sessionApp is the web app both libraries serve: POST /login?user=U, GET
// /me (the user, or 401), POST /logout.
type sessionApp struct {
	login  func(http.ResponseWriter, *http.Request, string) error
	user   func(*http.Request) (string, error)
	logout func(http.ResponseWriter, *http.Request) error
}

func (a sessionApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var err error
	switch r.URL.Path {
	case "/login":
		err = a.login(w, r, r.URL.Query().Get("user"))
	case "/me":
		var u string
		if u, err = a.user(r); err == nil && u == "" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		} else if err == nil {
			io.WriteString(w, u)
		}
	case "/logout":
		err = a.logout(w, r)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// browser sends requests to one app instance with a shared cookie jar.
type browser struct {
	t   *testing.T
	url string
	c   *http.Client
}

func (b *browser) expect(method, path string, status int, body string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.url+path, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || (body != "" && string(got) != body) {
		b.t.Fatalf("%s %s%s: %d %q, want %d %q", method, b.url, path, resp.StatusCode, got, status, body)
	}
}

// countKeys counts the live keys under prefix (linearizable).
func countKeys(t *testing.T, kv *client.Client, prefix string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for _, err := range kv.List(ctx, client.ListQuery{Prefix: prefix}) {
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("listing %s: %v", prefix, err)
			}
			t.Fatal(err)
		}
		n++
	}
	return n
}

var _ gsessions.Store = (*gorillastore.Store)(nil)
var _ scs.CtxStore = (*scsstore.Store)(nil)
var _ scs.IterableCtxStore = (*scsstore.Store)(nil)
