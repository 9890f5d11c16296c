package httpapi

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gorilla/mux"
)

// FuzzRouterMatchesMux: the router's fast path takes a path exactly when
// gorilla/mux (configured as New configures it) matches it to itemTemplate,
// and extracts the same key.
func FuzzRouterMatchesMux(f *testing.F) {
	for _, p := range []string{
		"/kv/items/a", "/kv/items/", "/kv/items", "/kv/items/a/b", "/kv/items/a%2Fb",
		"/kv/items/a/incr", "/kv/items//x", "/kv/items/%20", "/kv/itemsx/a", "//kv/items/a",
		"/kv/items/..", "/kv/items/a%2F..%2Fb", "/kv/items/\u00fc", "/kv/items/a;b", "/KV/items/a",
		"/kv/items/%zz", "/kv/items/a%00b", "/kv/items/.", "/kv/items/a b",
	} {
		f.Add(p)
	}
	m := mux.NewRouter().UseEncodedPath().SkipClean(true)
	m.Handle(itemTemplate, http.NotFoundHandler())
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.Parse("http://h" + path)
		if err != nil || u.Path == "" || u.RawQuery != "" || u.Fragment != "" || u.Host != "h" {
			return
		}
		r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		var match mux.RouteMatch
		muxOK := m.Match(r, &match) && match.MatchErr == nil
		key, ok := itemPathKey(u.EscapedPath())
		if ok != muxOK {
			t.Fatalf("path %q (escaped %q): fast path %v, mux %v", path, u.EscapedPath(), ok, muxOK)
		}
		if ok && key != match.Vars["key"] {
			t.Fatalf("path %q: fast path key %q, mux key %q", path, key, match.Vars["key"])
		}
	})
}
