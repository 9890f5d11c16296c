package main

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"
)

// startTestNode starts kvnode from command-line flags exactly as main does
// (parseFlags, newLogger, start), on ports the kernel picks and with fast raft
// timings unless args override them (a later flag wins), writing its logs to
// logs (nil: discarded). The node stops when the test ends; the returned stop
// does it earlier and may be called again.
func startTestNode(t *testing.T, logs io.Writer, args ...string) (*node, func()) {
	t.Helper()
	args = append([]string{"--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0",
		"--heartbeat-timeout", "300ms", "--election-timeout", "300ms"}, args...)
	if !slices.Contains(args, "--peer-ca") {
		// Tests about other things run a plaintext peer port; the peer TLS
		// tests pass certificates.
		args = append(args, "--insecure-peer")
	}
	o, err := parseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	logger, err := newLogger(o, logs)
	if err != nil {
		t.Fatal(err)
	}
	n, err := start(o, logger, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(stop)
	return n, stop
}
