package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

// budgetPage is the body of one GET /kv/items answer.
type budgetPage struct {
	Data struct {
		Items []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"items"`
		Cursor   *string `json:"cursor"`
		Complete bool    `json:"complete"`
	} `json:"data"`
}

// pageAll lists every key with values=true, following cursors, and returns
// the keys in the order seen and the largest body. Every occurrence of
// shared (a value many items hold) is replaced by 0 before the body is
// decoded, which keeps decoding cheap under the race detector; values must
// then be that 0 or other JSON.
func pageAll(t *testing.T, e *testEnv, query string, shared []byte) (keys []string, largest int) {
	t.Helper()
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		q := "/kv/items?values=true&" + query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r := e.do("GET", q, "", bearer)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", q, r.status, r.body)
		}
		largest = max(largest, len(r.body))
		body := r.body
		if shared != nil {
			body = stripValues(body, shared)
		}
		var p budgetPage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %d is not JSON: %v", pages, err)
		}
		if len(p.Data.Items) == 0 && !p.Data.Complete {
			t.Fatalf("page %d: no items but not complete", pages)
		}
		for _, it := range p.Data.Items {
			if len(it.Value) == 0 {
				t.Fatalf("item %q without its value", it.Key)
			}
			keys = append(keys, it.Key)
		}
		if p.Data.Complete {
			if p.Data.Cursor != nil {
				t.Fatalf("complete page with a cursor %q", *p.Data.Cursor)
			}
			return keys, largest
		}
		if p.Data.Cursor == nil {
			t.Fatalf("page %d not complete and without a cursor", pages)
		}
		cursor = *p.Data.Cursor
	}
}

// stripValues replaces each value equal to shared in a list body by 0. It
// jumps over the values instead of searching them, so it costs little even
// under the race detector.
func stripValues(body, shared []byte) []byte {
	marker := []byte(`,"value":`)
	out := make([]byte, 0, 4096)
	i := 0
	for {
		j := bytes.Index(body[i:], marker)
		if j < 0 {
			break
		}
		j += i + len(marker)
		out = append(out, body[i:j]...)
		i = j
		if bytes.HasPrefix(body[j:], shared) {
			out = append(out, '0')
			i += len(shared)
		}
	}
	return append(out, body[i:]...)
}

// TestListByteBudget lists 1000 values of 700 KB with values=true and the
// largest page size: every page stays within the 4 MiB default budget, every
// key is seen exactly once, in order.
func TestListByteBudget(t *testing.T) {
	e := newTestEnv(t, nil)
	value := []byte(`"` + strings.Repeat("v", 700_000-2) + `"`) // shared by every item
	const n = 1000
	for i := range n {
		k := fmt.Sprintf("big/%04d", i)
		e.st.items[k] = store.Item{Key: k, Value: value, Version: uint64(i + 1)}
	}
	e.st.items["other"] = store.Item{Key: "other", Value: []byte("1"), Version: 9999}

	keys, largest := pageAll(t, e, "prefix=big%2F&limit=1000", value)
	if largest > int(DefaultMaxListBytes) {
		t.Fatalf("a page of %d bytes, over the %d byte budget", largest, DefaultMaxListBytes)
	}
	if largest < int(DefaultMaxListBytes)-len(value)-1024 {
		t.Fatalf("largest page %d bytes: pages end well before the budget", largest)
	}
	if len(keys) != n {
		t.Fatalf("saw %d keys, want %d", len(keys), n)
	}
	for i, k := range keys {
		if want := fmt.Sprintf("big/%04d", i); k != want {
			t.Fatalf("key %d is %q, want %q (each key once, in order)", i, k, want)
		}
	}
}

// TestListByteBudgetOneLargeItem: a value larger than the whole budget still
// comes back, one per page, so paging never stalls; small items share pages.
func TestListByteBudgetOneLargeItem(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxListBytes = MinMaxListBytes })
	big := []byte(`"` + strings.Repeat("x", int(MinMaxListBytes)) + `"`)
	for i := range 5 {
		k := fmt.Sprintf("a%d", i)
		e.st.items[k] = store.Item{Key: k, Value: big, Version: 1}
	}
	for i := range 50 {
		k := fmt.Sprintf("b%02d", i)
		e.st.items[k] = store.Item{Key: k, Value: []byte(`{"n":1}`), Version: 1}
	}
	keys, _ := pageAll(t, e, "limit=1000", nil)
	if len(keys) != 55 {
		t.Fatalf("saw %d keys, want 55: %v", len(keys), keys)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Fatalf("key %q seen twice", k)
		}
		seen[k] = true
	}
	// The 50 small items fit in one page of the budget.
	r := e.do("GET", "/kv/items?values=true&prefix=b", "", bearer)
	var p budgetPage
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Data.Items) != 50 || !p.Data.Complete {
		t.Fatalf("small items: %d items, complete %v, err %v", len(p.Data.Items), p.Data.Complete, err)
	}
	// Each large item is a page of its own, longer than the budget.
	r = e.do("GET", "/kv/items?values=true&prefix=a", "", bearer)
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Data.Items) != 1 || p.Data.Complete || p.Data.Cursor == nil {
		t.Fatalf("large items: %d items, complete %v, err %v", len(p.Data.Items), p.Data.Complete, err)
	}
}

func TestMaxListBytesValidation(t *testing.T) {
	for _, n := range []int64{-1, 1, MinMaxListBytes - 1, maxMaxValueBytes + 1} {
		if err := (Config{APIKey: "k", MaxListBytes: n}).Validate(); err == nil {
			t.Errorf("MaxListBytes %d accepted", n)
		}
	}
	for _, n := range []int64{0, MinMaxListBytes, DefaultMaxListBytes} {
		if err := (Config{APIKey: "k", MaxListBytes: n}).Validate(); err != nil {
			t.Errorf("MaxListBytes %d: %v", n, err)
		}
	}
}
