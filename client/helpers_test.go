package client_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

// fastRetry keeps retry tests quick: the backoff is real but tiny.
var fastRetry = client.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}

// node is one fake endpoint with a request counter.
type node struct {
	url      string
	requests atomic.Int64
}

// startNodes starts one httptest server per injector, all serving fake.
func startNodes(t *testing.T, fake *kvfake.Server, injectors ...kvfake.Injector) []*node {
	t.Helper()
	nodes := make([]*node, len(injectors))
	for i, inj := range injectors {
		n := &node{}
		h := fake.Handler(inj)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.requests.Add(1)
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		n.url = srv.URL
		nodes[i] = n
	}
	return nodes
}

func urls(nodes []*node) []string {
	u := make([]string, len(nodes))
	for i, n := range nodes {
		u[i] = n.url
	}
	return u
}

func newClient(t *testing.T, endpoints []string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Endpoints: endpoints, Retry: fastRetry, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// healthy is a fake cluster of one healthy node and a client for it.
func healthy(t *testing.T) (*kvfake.Server, *client.Client) {
	t.Helper()
	fake := kvfake.New()
	nodes := startNodes(t, fake, nil)
	return fake, newClient(t, urls(nodes))
}

// closedURL is the URL of a server that no longer listens: connection refused.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// firstN injects fault into the first n requests matching match, then none.
func firstN(n int64, fault kvfake.Fault, match func(*http.Request) bool) kvfake.Injector {
	var seen atomic.Int64
	return func(r *http.Request) kvfake.Fault {
		if match != nil && !match(r) {
			return kvfake.NoFault
		}
		if seen.Add(1) <= n {
			return fault
		}
		return kvfake.NoFault
	}
}

func always(f kvfake.Fault) kvfake.Injector {
	return func(*http.Request) kvfake.Fault { return f }
}

func writes(r *http.Request) bool { return r.Method != http.MethodGet }

func startHandler(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// startRaw serves body with 200 on every path.
func startRaw(t *testing.T, body string) string {
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
}
