package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

func TestDebugAddrServesPprofOnlyWhenSet(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if d, err := startDebug("", logger); d != nil || err != nil {
		t.Fatalf("empty --debug-addr started %v, %v", d, err)
	}
	var none *debugServer
	none.stop() // no-op

	d, err := startDebug("127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + d.addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("goroutine profile: %d, %d bytes", resp.StatusCode, len(body))
	}
	d.stop()
	if _, err := http.Get("http://" + d.addr + "/debug/pprof/"); err == nil {
		t.Fatal("debug server still answers after stop")
	}
}
