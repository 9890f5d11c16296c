// Command cache-aside is an example service that caches an expensive lookup
// in quorumkv with client.GetOrCompute:
//
//	GET /price?sku=item_1   → {"sku": "item_1", "cents": 1234, "computedAt": ...}
//
// A hit is served from the cluster. On a miss exactly one request per key in
// this process runs the lookup (the others wait for it), and across
// processes the first to store the result wins (If-None-Match: *): the
// others discard their own result and serve the stored one, so every
// instance serves the same value until it expires (-ttl).
//
//	KV_API_KEY=$(cat .cluster/api-key) go run ./examples/cache-aside -addr 127.0.0.1:8001
//	curl 'http://127.0.0.1:8001/price?sku=item_1'
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// price is the cached value.
type price struct {
	SKU        string `json:"sku"`
	Cents      int64  `json:"cents"`
	ComputedAt int64  `json:"computedAt"` // Unix ms
}

// service serves /price, caching lookup's results for ttl.
type service struct {
	kv     *client.Client
	ttl    time.Duration
	lookup func(ctx context.Context, sku string) (price, error)
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /price", s.price)
	return mux
}

func (s *service) price(w http.ResponseWriter, r *http.Request) {
	sku := r.URL.Query().Get("sku")
	if sku == "" {
		http.Error(w, "sku is required", http.StatusBadRequest)
		return
	}
	it, err := s.kv.GetOrCompute(r.Context(), "cache/price/"+sku, s.ttl, func(ctx context.Context) (any, error) {
		return s.lookup(ctx, sku)
	})
	if err != nil {
		if it.Value == nil {
			log.Printf("price %s: %v", sku, err)
			http.Error(w, "price unavailable", http.StatusServiceUnavailable)
			return
		}
		// Computed but not cached (the cluster could not store it): still a
		// correct answer for this request.
		log.Printf("price %s: not cached: %v", sku, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(it.Value)
	w.Write([]byte("\n"))
}

// slowLookup stands in for the expensive computation being cached.
func slowLookup(ctx context.Context, sku string) (price, error) {
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
		return price{}, ctx.Err()
	}
	return price{SKU: sku, Cents: 100 + rand.Int64N(10000), ComputedAt: time.Now().UnixMilli()}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8001", "listen address")
	endpoints := flag.String("endpoints", envOr("KV_ENDPOINTS", "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"), "quorumkv node URLs")
	ttl := flag.Duration("ttl", time.Hour, "how long a computed price is cached")
	flag.Parse()

	kv, err := client.New(client.Config{Endpoints: strings.Split(*endpoints, ","), APIKey: os.Getenv("KV_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	s := &service{kv: kv, ttl: *ttl, lookup: slowLookup}
	srv := &http.Server{Addr: *addr, Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("cache-aside listening on http://%s", *addr)
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
