package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

// exampleClient returns a client of an in-memory fake cluster (client/kvfake
// serves the same HTTP API), so the examples run as tests; a real program
// passes its nodes' URLs and its API key.
func exampleClient() (*client.Client, func()) {
	srv := httptest.NewServer(kvfake.New().Handler(nil))
	kv, err := client.New(client.Config{Endpoints: []string{srv.URL}, APIKey: "example-key"})
	if err != nil {
		log.Fatal(err)
	}
	return kv, srv.Close
}

type session struct {
	UserID string   `json:"userId"`
	Cart   []string `json:"cart"`
}

func ExampleClient_Put() {
	kv, done := exampleClient()
	defer done()
	ctx := context.Background()

	w, err := kv.Put(ctx, "session-usr_1", session{UserID: "usr_1"}, client.TTL(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", w.Created, "version:", w.Version, "expires:", !w.ExpiresAt.IsZero())
	// Output: created: true version: 1 expires: true
}

func ExampleClient_Get() {
	kv, done := exampleClient()
	defer done()
	ctx := context.Background()
	if _, err := kv.Put(ctx, "session-usr_1", session{UserID: "usr_1", Cart: []string{"sku-9"}}); err != nil {
		log.Fatal(err)
	}

	it, err := kv.Get(ctx, "session-usr_1")
	if err != nil {
		log.Fatal(err)
	}
	var s session
	if err := it.Decode(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(it.Value), s.Cart[0])

	_, err = kv.Get(ctx, "session-nobody")
	fmt.Println("missing:", errors.Is(err, client.ErrNotFound))
	// Output:
	// {"userId":"usr_1","cart":["sku-9"]} sku-9
	// missing: true
}

// Optimistic concurrency: write only over the version that was read, and
// create-only writes where exactly one caller wins.
func ExampleIfMatch() {
	kv, done := exampleClient()
	defer done()
	ctx := context.Background()
	first, err := kv.Put(ctx, "cfg", map[string]string{"theme": "light"})
	if err != nil {
		log.Fatal(err)
	}

	// Someone else writes in between.
	if _, err := kv.Put(ctx, "cfg", map[string]string{"theme": "blue"}); err != nil {
		log.Fatal(err)
	}
	_, err = kv.Put(ctx, "cfg", map[string]string{"theme": "dark"}, client.IfMatch(first.Version))
	current, _ := client.CurrentVersion(err)
	fmt.Println("lost the race:", errors.Is(err, client.ErrVersionMismatch), "current version:", current)

	_, err = kv.Put(ctx, "lock-report-42", "worker-7", client.IfNoneMatch(), client.TTL(30*time.Second))
	fmt.Println("lock taken:", err == nil)
	_, err = kv.Put(ctx, "lock-report-42", "worker-8", client.IfNoneMatch(), client.TTL(30*time.Second))
	fmt.Println("second taker:", errors.Is(err, client.ErrAlreadyExists))
	// Output:
	// lost the race: true current version: 2
	// lock taken: true
	// second taker: true
}

func ExampleClient_GetOrCompute() {
	kv, done := exampleClient()
	defer done()
	ctx := context.Background()

	computed := 0
	report := func(ctx context.Context) (any, error) {
		computed++
		return map[string]int{"total": 42}, nil
	}
	for range 3 {
		it, err := kv.GetOrCompute(ctx, "cache-report-42", time.Hour, report)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(it.Value))
	}
	fmt.Println("computed", computed, "time")
	// Output:
	// {"total":42}
	// {"total":42}
	// {"total":42}
	// computed 1 time
}

func ExampleClient_List() {
	kv, done := exampleClient()
	defer done()
	ctx := context.Background()
	for _, k := range []string{"session-b", "session-a", "other"} {
		if _, err := kv.Put(ctx, k, k); err != nil {
			log.Fatal(err)
		}
	}

	// List pages through the keys in byte order; the loop ends after the last.
	for it, err := range kv.List(ctx, client.ListQuery{Prefix: "session-", Values: true}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(it.Key, string(it.Value))
	}
	// Output:
	// session-a "session-a"
	// session-b "session-b"
}
