package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildKvnode compiles this package into a binary for tests that need a real
// process (signals).
func buildKvnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvnode")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// firstByteWriter records output and closes started at the first byte.
type firstByteWriter struct {
	syncBuffer
	started chan struct{}
	once    bool
}

func (w *firstByteWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if !w.once && len(p) > 0 {
		w.once = true
		close(w.started)
	}
	w.mu.Unlock()
	return w.syncBuffer.Write(p)
}

// TestSIGHUPDuringStartDoesNotKillTheNode starts a real kvnode and, from its
// first line of output on (the process has taken over its signals by then),
// sends SIGHUP every few milliseconds while raft opens, elects and the node
// becomes ready. Go's default for an unhandled SIGHUP is to exit, so a node
// that handled signals only once started would die here.
func TestSIGHUPDuringStartDoesNotKillTheNode(t *testing.T) {
	bin := buildKvnode(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("hup-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin, "--id", "n1", "--http-addr", httpAddr, "--peer-addr", freeAddr(t),
		"--data-dir", filepath.Join(dir, "data"), "--api-key-file", keyFile,
		"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--insecure-peer")
	out := &firstByteWriter{started: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})

	select {
	case <-out.started:
	case err := <-exited:
		t.Fatalf("kvnode exited before writing anything: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("kvnode wrote nothing within 60 s")
	}
	client := &http.Client{Timeout: time.Second}
	ready := func() bool {
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	// HUPs go out from their own goroutine: a /readyz probe may wait up to
	// its 2 s bound while the node starts.
	stopHUP := make(chan struct{})
	hupDone := make(chan int)
	go func() {
		hups := 0
		defer func() { hupDone <- hups }()
		for {
			select {
			case <-stopHUP:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if cmd.Process.Signal(syscall.SIGHUP) != nil {
				return // the process is gone; the main loop reports it
			}
			hups++
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		select {
		case err := <-exited:
			close(stopHUP)
			t.Fatalf("kvnode died after %d SIGHUPs during start: %v\n%s", <-hupDone, err, out.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 60 s\n%s", out.String())
		}
	}
	close(stopHUP)
	hups := <-hupDone
	if hups < 5 {
		t.Fatalf("only %d SIGHUPs landed before the node was ready; the start window was not exercised", hups)
	}
	select {
	case err := <-exited:
		t.Fatalf("kvnode died after %d SIGHUPs: %v\n%s", hups, err, out.String())
	default:
	}
	// Once started, a HUP is a reload.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "a reload logged", func() bool {
		return strings.Contains(out.String(), "SIGHUP: reloaded the API key")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("kvnode exited with %v after SIGTERM\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kvnode did not stop within 30 s of SIGTERM")
	}
	t.Logf("%d SIGHUPs sent while the node started; it survived and stopped cleanly", hups)
}
