package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

// countingListener counts the connections it accepts and how many are open
// at once.
type countingListener struct {
	net.Listener
	accepted, open, maxOpen atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	n := l.open.Add(1)
	for {
		m := l.maxOpen.Load()
		if n <= m || l.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// TestPoolKeepsConnectionsAtPoolSize runs 64 concurrent callers against one
// node: the client must reuse its pool instead of dialing (the default
// transport keeps 2 idle connections per host, so it would dial hundreds).
func TestPoolKeepsConnectionsAtPoolSize(t *testing.T) {
	for _, pool := range []int{0, 8} { // 0: DefaultMaxConnsPerNode
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &countingListener{Listener: ln}
			srv := httptest.NewUnstartedServer(kvfake.New().Handler(nil))
			srv.Listener = cl
			srv.Start()
			t.Cleanup(srv.Close)
			c := newClient(t, []string{srv.URL}, func(cfg *client.Config) {
				cfg.MaxConnsPerNode = pool
				cfg.Timeout = time.Minute // no attempt abandoned (and its connection replaced) on a loaded machine
			})
			t.Cleanup(c.Close)

			const callers, calls = 64, 15
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					for j := range calls {
						key := fmt.Sprintf("k%d-%d", i, j%4)
						if _, err := c.Put(ctx, key, j); err != nil {
							errs <- err
							return
						}
						if _, err := c.Get(ctx, key); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			want := int64(pool)
			if pool == 0 {
				want = client.DefaultMaxConnsPerNode
			}
			// About the pool, open at once and over the whole run (the
			// default transport opens over a thousand here). The slack covers
			// a connection the transport drops and replaces, which the server
			// sees closed only a moment after the replacement arrives.
			slack := max(2, want/8)
			if got := cl.maxOpen.Load(); got > want+slack {
				t.Fatalf("%d connections open at once; the pool holds %d", got, want)
			}
			if got := cl.accepted.Load(); got > want+slack {
				t.Fatalf("%d callers × %d calls opened %d connections; the pool holds %d", callers, 2*calls, got, want)
			}
			t.Logf("%d connections for %d requests (pool %d)", cl.accepted.Load(), callers*calls*2, want)
		})
	}
}

func TestAPIErrorKeepsRequestID(t *testing.T) {
	srv := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1234")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no such key","retryable":false}}`))
	}))
	_, err := newClient(t, []string{srv}).Get(context.Background(), "k")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.RequestID != "req-1234" || !strings.Contains(err.Error(), "req-1234") {
		t.Fatalf("err = %v (%#v)", err, ae)
	}
}

// TestCallTimeoutBoundsRetries: a cluster without a leader makes a call
// with a background context give up at CallTimeout, not after every
// attempt's backoff.
func TestCallTimeoutBoundsRetries(t *testing.T) {
	fake := kvfake.New()
	nodes := startNodes(t, fake, always(kvfake.Unavailable), always(kvfake.Unavailable))
	c := newClient(t, urls(nodes), func(cfg *client.Config) {
		cfg.Retry = client.RetryPolicy{MaxAttempts: 1000, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
		cfg.CallTimeout = 300 * time.Millisecond
	})
	start := time.Now()
	_, err := c.Get(context.Background(), "k")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "CallTimeout") {
		t.Fatalf("err = %v", err)
	}
	if took > 5*time.Second {
		t.Fatalf("the call took %v with a 300ms CallTimeout", took)
	}
	// A policy that could retry for long is valid because CallTimeout cuts it.
	long := client.Config{Endpoints: []string{"a:1"}, Retry: client.RetryPolicy{MaxAttempts: 1000, BaseDelay: time.Second, MaxDelay: time.Minute}}
	if err := long.Validate(); err != nil || long.RetrySpan() != client.DefaultCallTimeout {
		t.Fatalf("long policy under the default CallTimeout: span %v, %v", long.RetrySpan(), err)
	}
	long.CallTimeout = -1
	if err := long.Validate(); err == nil {
		t.Fatal("an unbounded retry span without CallTimeout was accepted")
	}
	long.CallTimeout = 10 * time.Minute
	if err := long.Validate(); err == nil {
		t.Fatal("a CallTimeout beyond MaxRetrySpan was accepted")
	}
}

func TestSpreadReads(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	nodes := startNodes(t, fake, nil, nil, nil)
	newClient(t, urls(nodes)).Put(ctx, "k", 1)
	for _, spread := range []bool{false, true} {
		for _, n := range nodes {
			n.requests.Store(0)
		}
		c := newClient(t, urls(nodes), func(cfg *client.Config) { cfg.SpreadReads = spread })
		for range 30 {
			if _, err := c.Get(ctx, "k", client.Stale()); err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range []string{"a", "b"} {
			if _, err := c.Put(ctx, w, 1); err != nil {
				t.Fatal(err)
			}
		}
		got := []int64{nodes[0].requests.Load(), nodes[1].requests.Load(), nodes[2].requests.Load()}
		want := []int64{32, 0, 0}
		if spread {
			want = []int64{12, 10, 10} // reads rotate; writes stay on the current node
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("SpreadReads=%v: requests per node %v, want %v", spread, got, want)
		}
	}
}

func TestSnapshotChecksTheServersChecksum(t *testing.T) {
	content := bytes.Repeat([]byte("snapshot bytes "), 1000)
	sum := sha256.Sum256(content)
	body := append(content[:len(content):len(content)], sum[:]...) // a backup ends with its SHA-256
	for _, tc := range []struct {
		name, sha, size   string
		wantErr, verified bool
	}{
		{"matching", hex.EncodeToString(sum[:]), fmt.Sprint(len(body)), false, true},
		{"wrong sum", strings.Repeat("0", 64), fmt.Sprint(len(body)), true, false},
		{"wrong size", hex.EncodeToString(sum[:]), "3", true, false},
		{"other trailer", hex.EncodeToString(sum[:]), fmt.Sprint(len(body)), true, false},
		{"no trailer", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-KV-Backup-Sha256, X-KV-Backup-Size")
				w.Header().Set("X-KV-Index", "42")
				b := body
				if tc.name == "other trailer" {
					b = append(content[:len(content):len(content)], make([]byte, 32)...)
				}
				for len(b) > 0 { // odd pieces, so the trailer straddles writes
					n := min(len(b), 777)
					w.Write(b[:n])
					w.(http.Flusher).Flush()
					b = b[n:]
				}
				if tc.sha != "" {
					w.Header().Set("X-KV-Backup-Sha256", tc.sha)
					w.Header().Set("X-KV-Backup-Size", tc.size)
				}
			}))
			var buf bytes.Buffer
			info, err := newClient(t, []string{srv}).SnapshotWithInfo(context.Background(), &buf)
			if (err != nil) != tc.wantErr || info.Verified != tc.verified || info.Index != 42 || info.Bytes != int64(len(body)) {
				t.Fatalf("info %+v, err %v", info, err)
			}
			if tc.verified && info.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("sha256 %s", info.SHA256)
			}
		})
	}
}

// tlsServer serves kvfake over HTTPS with a fresh test certificate (valid
// for 127.0.0.1 and example.com) and returns its URL and a PEM file of it.
func tlsServer(t *testing.T, clientCAs *x509.CertPool) (string, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(kvfake.New().Handler(nil))
	if clientCAs != nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, ca
}

func TestTLSOptions(t *testing.T) {
	ctx := context.Background()
	url, ca := tlsServer(t, nil)
	try := func(tc *client.TLSConfig, endpoint string) error {
		c, err := client.New(client.Config{Endpoints: []string{endpoint}, TLS: tc, Retry: fastRetry})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Put(ctx, "k", 1)
		return err
	}
	if err := try(&client.TLSConfig{CAFile: ca}, url); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	// A bare host:port gets https:// when TLS is configured.
	if err := try(&client.TLSConfig{CAFile: ca}, strings.TrimPrefix(url, "https://")); err != nil {
		t.Fatalf("bare host:port: %v", err)
	}
	var ae *client.APIError
	if err := try(nil, url); !errors.As(err, &ae) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	if err := try(&client.TLSConfig{CAFile: ca, ServerName: "other.example"}, url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong server name: %v", err)
	}
	if err := try(&client.TLSConfig{CAFile: ca, ServerName: "example.com"}, url); err != nil {
		t.Fatalf("server name in the certificate: %v", err)
	}
	if err := try(&client.TLSConfig{InsecureSkipVerify: true}, url); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if err := try(&client.TLSConfig{CAFile: ca}, strings.Replace(url, "https", "http", 1)); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("http endpoint with TLS: %v", err)
	}
	if err := try(&client.TLSConfig{CertFile: ca}, url); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("cert without key: %v", err)
	}
	if err := try(&client.TLSConfig{CAFile: filepath.Join(t.TempDir(), "none.pem")}, url); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func TestFromEnv(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("secret-key\nignored\n"), 0o600)
	env := map[string]string{
		client.EnvEndpoints: " n1:8080, https://n2:8080 ,", client.EnvAPIKeyFile: keyFile,
		client.EnvCACert: "/ca.pem", client.EnvCert: "/c.pem", client.EnvKey: "/k.pem",
		client.EnvTLSServerName: "kv.example", client.EnvInsecureSkipTLSVerify: "false",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv(client.EnvAPIKey, "")
	cfg, err := client.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := client.TLSConfig{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "kv.example"}
	if fmt.Sprint(cfg.Endpoints) != "[n1:8080 https://n2:8080]" || cfg.APIKey != "secret-key" || cfg.TLS == nil || *cfg.TLS != want {
		t.Fatalf("cfg %+v tls %+v", cfg, cfg.TLS)
	}
	t.Setenv(client.EnvInsecureSkipTLSVerify, "maybe")
	if _, err := client.FromEnv(); err == nil {
		t.Fatal("a malformed boolean was accepted")
	}
	t.Setenv(client.EnvEndpoints, "")
	if _, err := client.FromEnv(); err == nil || !strings.Contains(err.Error(), client.EnvEndpoints) {
		t.Fatalf("no endpoints: %v", err)
	}
}
