package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sseServer answers GET /kv/watch with a fixed event stream (the server
// side is tested in httpapi and against real nodes; this checks the CLI).
func sseServer(t *testing.T) (*httptest.Server, *[]string) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kv/watch" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: progress\nid: 4\ndata: {\"type\":\"progress\",\"index\":4}\n\n")
		fmt.Fprint(w, "id: 5\ndata: {\"type\":\"set\",\"key\":\"s/1\",\"version\":5,\"value\":{\"n\":1},\"expiresAt\":null,\"index\":5}\n\n")
		fmt.Fprint(w, "data: {\"type\":\"delete\",\"key\":\"s/1\",\"version\":6,\"expiresAt\":null,\"index\":6}\n\n")
		fmt.Fprint(w, "id: 6\ndata: {\"type\":\"delete\",\"key\":\"s/2\",\"version\":6,\"expiresAt\":null,\"index\":6}\n\n")
		fmt.Fprint(w, "id: 7\ndata: {\"type\":\"expire\",\"key\":\"s/3\",\"version\":7,\"expiresAt\":\"2026-12-05T00:00:00.000Z\",\"index\":7}\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

func TestWatchCommand(t *testing.T) {
	srv, queries := sseServer(t)
	env := map[string]string{"KV_ENDPOINTS": srv.URL, "KV_API_KEY": "k"}
	runOut := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb}, func(k string) string { return env[k] }); code != 0 {
			t.Fatalf("kvctl %q: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	out := runOut("watch", "--count", "4", "s/")
	want := "5\tset\ts/1\t{\"n\":1}\tnever expires\n6\tdelete\ts/1\n6\tdelete\ts/2\n7\texpire\ts/3\n"
	if out != want {
		t.Fatalf("text output:\n%s\nwant\n%s", out, want)
	}
	if (*queries)[0] != "prefix=s%2F" {
		t.Fatalf("query %q", (*queries)[0])
	}
	out = runOut("watch", "--json", "--count", "2", "--from-index", "3", "s/")
	want = `{"type":"set","key":"s/1","value":{"n":1},"version":5,"expiresAt":null,"index":5}` + "\n" +
		`{"type":"delete","key":"s/1","version":6,"expiresAt":null,"index":6}` + "\n"
	if out != want {
		t.Fatalf("json output:\n%s\nwant\n%s", out, want)
	}
	if q := (*queries)[len(*queries)-1]; q != "fromIndex=3&prefix=s%2F" {
		t.Fatalf("query %q", q)
	}
}
