//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

// TestKvbenchSmoke is CI's only benchmark: it builds kvnode and kvbench,
// starts a real single-node kvnode on ports the kernel picks, runs the
// session workload (90 % GET, 10 % PUT with TTL, after a preload) for 10
// seconds and requires non-zero throughput of both ops and no error. It
// checks that the tool and the server work together, not how fast they are.
func TestKvbenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs kvnode and kvbench for about 15 s; skipped with -short")
	}
	root := repoRoot(t)
	bin := t.TempDir()
	goBuild(t, root, filepath.Join(bin, "kvnode"), "./cmd/kvnode")
	goBuild(t, root, filepath.Join(bin, "kvbench"), "./cmd/kvbench")

	const key = "smoke-key"
	base, _ := startKvnode(t, filepath.Join(bin, "kvnode"), key, "--insecure-peer")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kvbench"),
		"-endpoints", base, "-workload", "session", "-preload", "-keys", "1000",
		"-c", "8", "-d", "10s", "-warmup", "1s", "-o", "json")
	cmd.Env = append(os.Environ(), "KV_API_KEY="+key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kvbench: %v\nstderr: %s\nstdout: %s", err, stderr.String(), out)
	}
	t.Logf("kvbench report:\n%s", out)

	var r struct {
		Ops map[string]struct {
			Requests uint64  `json:"requests"`
			Errors   uint64  `json:"errors"`
			Misses   uint64  `json:"misses"`
			Rate     float64 `json:"rate"`
		} `json:"ops"`
		Total struct {
			Requests uint64  `json:"requests"`
			Errors   uint64  `json:"errors"`
			Rate     float64 `json:"rate"`
		} `json:"total"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("kvbench -o json is not JSON: %v", err)
	}
	if r.Total.Rate <= 0 || r.Total.Requests == 0 {
		t.Errorf("no throughput: %+v", r.Total)
	}
	if r.Total.Errors != 0 || len(r.Errors) != 0 {
		t.Errorf("%d errors: %s", r.Total.Errors, r.Errors)
	}
	for _, op := range []string{"get", "put"} {
		if s := r.Ops[op]; s.Requests == 0 || s.Rate <= 0 {
			t.Errorf("op %s: %+v", op, s)
		}
	}
	if m := r.Ops["get"].Misses; m != 0 {
		t.Errorf("%d GET misses after the preload", m)
	}
}

func goBuild(t *testing.T, dir, out, pkg string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go" // where scripts/test.sh also looks
	}
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// startKvnode runs a single-node kvnode with apiKey and the extra flags on
// 127.0.0.1 ports the kernel chooses, waits until it leads, and returns its
// base URL and peer address. The node gets SIGTERM (SIGKILL after 15 s) when
// the test ends.
func startKvnode(t *testing.T, bin, apiKey string, extra ...string) (base, peer string) {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--id", "n1", "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--api-key-file", keyFile,
		"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--log-format", "json"}
	logs, w := io.Pipe()
	addr := make(chan [2]string, 1)
	logged := make(chan struct{})
	// One goroutine reads the log to its end and picks up the addresses.
	go func() {
		defer close(logged)
		lines := bufio.NewScanner(logs)
		for lines.Scan() {
			var l struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
				Peer string `json:"peer"`
			}
			if json.Unmarshal(lines.Bytes(), &l) == nil && l.Msg == "kvnode started" {
				addr <- [2]string{l.HTTP, l.Peer}
			}
			t.Log("kvnode: " + lines.Text())
		}
		_, _ = io.Copy(io.Discard, logs)
	}()
	p := &devcluster.Proc{Name: "kvnode"}
	// No KV_* from the environment; the child dies with the test.
	err := p.Start(devcluster.Spec{Path: bin, Args: append(args, extra...), Env: []string{}, Output: w, DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	exited := p.Done()
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil && !strings.Contains(err.Error(), "not running") {
			t.Logf("stopping kvnode: %v", err)
		}
		w.Close()
		<-logged
	})

	var httpAddr string
	select {
	case a := <-addr:
		httpAddr, peer = a[0], a[1]
	case <-exited:
		t.Fatal("kvnode exited during startup; its log is above")
	case <-time.After(30 * time.Second):
		t.Fatal("kvnode did not log its HTTP address within 30 s")
	}
	base = "http://" + httpAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/cluster/status", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), `"Leader"`) {
				return base, peer
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kvnode did not become leader within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
