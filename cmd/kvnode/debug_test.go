package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestDebugAddrServesPprofOnlyWhenSet(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if d, err := startDebug("", false, nil, logger); d != nil || err != nil {
		t.Fatalf("empty --debug-addr started %v, %v", d, err)
	}
	var none *debugServer
	none.stop() // no-op

	d, err := startDebug("127.0.0.1:0", false, nil, logger)
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

// TestDebugListenerDefaultsToLoopback: an address without a host binds
// loopback; an address on every interface is refused unless explicitly
// allowed.
func TestDebugListenerDefaultsToLoopback(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))

	d, err := startDebug(":0", false, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(d.addr)
	d.stop()
	if host != "127.0.0.1" {
		t.Fatalf(":0 bound %s, want loopback", d.addr)
	}

	if d, err := startDebug("0.0.0.0:0", false, nil, logger); err == nil {
		d.stop()
		t.Fatal("a non-loopback --debug-addr was accepted without --debug-allow-remote")
	} else if !strings.Contains(err.Error(), "--debug-allow-remote") {
		t.Fatalf("refusal does not say how to allow it: %v", err)
	}

	d, err = startDebug("0.0.0.0:0", true, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	d.stop()
	if strings.Count(logs.String(), "NON-LOOPBACK") != 1 {
		t.Fatalf("no loud warning for a non-loopback debug listener:\n%s", logs.String())
	}
}

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"kvnode", "--api-key", "s3cret", "--id", "n1"}, []string{"kvnode", "--api-key", redactedValue, "--id", "n1"}},
		{[]string{"kvnode", "-api-key", "s3cret"}, []string{"kvnode", "-api-key", redactedValue}},
		{[]string{"kvnode", "--api-key=s3cret"}, []string{"kvnode", "--api-key=" + redactedValue}},
		{[]string{"kvnode", "-api-key=s3cret", "--data-dir", "d"}, []string{"kvnode", "-api-key=" + redactedValue, "--data-dir", "d"}},
		{[]string{"kvnode", "--api-key-file", "/etc/kv/key"}, []string{"kvnode", "--api-key-file", "/etc/kv/key"}},
		{[]string{"kvnode", "--api-key"}, []string{"kvnode", "--api-key"}},
		{[]string{"kvnode", "--", "--api-key", "x"}, []string{"kvnode", "--", "--api-key", "x"}},
	} {
		if got := redactArgs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("redactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDebugPagesNeverShowTheAPIKey wires a node as main does, with the key on
// its command line, and reads every debug page that could echo it.
func TestDebugPagesNeverShowTheAPIKey(t *testing.T) {
	const secret = "argv-secret-0c1d9e7a"
	args := []string{"--data-dir", t.TempDir(), "--api-key", secret, "--debug-addr", "127.0.0.1:0"}
	saved := os.Args
	os.Args = append([]string{"kvnode", "--http-addr", "127.0.0.1:0"}, args...)
	defer func() { os.Args = saved }()
	n, _ := startTestNode(t, nil, args...)

	base := "http://" + n.debug.addr + "/debug/pprof/"
	for _, page := range []string{"", "cmdline", "goroutine?debug=2", "heap?debug=1", "symbol", "threadcreate?debug=1"} {
		resp, err := http.Get(base + page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", page, resp.StatusCode)
		}
		if strings.Contains(string(body), secret) {
			t.Fatalf("/debug/pprof/%s shows the API key", page)
		}
		if page == "cmdline" && !strings.Contains(string(body), "--api-key\x00"+redactedValue) {
			t.Fatalf("cmdline is not the redacted command line: %q", body)
		}
	}
	for _, path := range []string{"/debug/vars", "/debug/pprof/../vars"} {
		resp, err := http.Get("http://" + n.debug.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("%s is served", path)
		}
	}
}
