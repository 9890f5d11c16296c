package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/httpapi"
	"github.com/quorumkv/quorumkv/watch"
)

// The watch bounds default to package watch's and httpapi's defaults, come
// from flags or KV_WATCH_*, and out-of-range values are startup errors naming
// the flag.
func TestWatchFlags(t *testing.T) {
	none := func(string) string { return "" }
	o, err := parseFlags(nil, none, io.Discard)
	d := watch.DefaultConfig()
	if err != nil || o.watchMaxWatchers != d.MaxWatchers || o.watchHistoryEntries != d.MaxEntries ||
		o.watchHistoryBytes != d.MaxBytes || o.watchBuffer != d.WatcherBuffer || o.watchMaxDuration != httpapi.DefaultWatchMaxDuration {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	env := map[string]string{"KV_WATCH_MAX_WATCHERS": "10", "KV_WATCH_HISTORY_ENTRIES": "500", "KV_WATCH_BUFFER": "400"}
	o, err = parseFlags([]string{"--watch-max-duration", "2m", "--watch-history-bytes", "1048576"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || o.watchMaxWatchers != 10 || o.watchHistoryEntries != 500 || o.watchBuffer != 400 ||
		o.watchMaxDuration != 2*time.Minute || o.watchHistoryBytes != 1<<20 {
		t.Fatalf("from flags and environment: %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"--watch-max-watchers", "0"},
		{"--watch-max-watchers", "2000000"},
		{"--watch-history-entries", "0"},
		{"--watch-history-bytes", "1000"},
		{"--watch-buffer", "0"},
		{"--watch-history-entries", "100", "--watch-buffer", "101"},
		{"--watch-max-duration", "500ms"},
		{"--watch-max-duration", "25h"},
	} {
		flag := bad[len(bad)-2]
		if _, err := parseFlags(bad, none, io.Discard); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%v: %v, want an error naming %s", bad, err, flag)
		}
	}
}

// A node started with --watch-max-watchers 1 refuses a second stream, and
// with --watch-max-duration 1s ends the first with a max_duration closed
// event: the flags reach the watch hub and the HTTP API.
func TestWatchFlagsTakeEffect(t *testing.T) {
	n, _ := startTestNode(t, nil, "--data-dir", filepath.Join(t.TempDir(), "data"), "--api-key", "secret",
		"--watch-max-watchers", "1", "--watch-max-duration", "1s")
	base := "http://" + n.httpAddr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func() *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/kv/watch", nil)
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := open()
	defer first.Body.Close()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first watch: %s", first.Status)
	}
	second := open()
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second watch with --watch-max-watchers 1: %s, want 503", second.Status)
	}
	start := time.Now()
	sc := bufio.NewScanner(first.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"reason":"max_duration"`) {
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("stream closed after %v with --watch-max-duration 1s", took)
			}
			return
		}
	}
	t.Fatalf("stream ended without a max_duration closed event: %v", sc.Err())
}
