package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// healthServer answers /readyz with the status in *ready and /healthz with
// 200, and records the last path it saw.
func healthServer(ready *atomic.Int32, lastPath *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastPath.Store(r.URL.Path)
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte(`{"data":{"status":"ok"}}`))
		case "/readyz":
			if code := int(ready.Load()); code != http.StatusOK {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				w.Write([]byte(`{"error":{"code":"no_leader","message":"This node knows no leader.","retryable":true}}`))
				return
			}
			w.Write([]byte(`{"data":{"status":"ready"}}`))
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			http.NotFound(w, r)
		}
	})
}

func TestHealthSubcommand(t *testing.T) {
	var ready atomic.Int32
	var lastPath atomic.Value
	srv := httptest.NewServer(healthServer(&ready, &lastPath))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	tests := []struct {
		name     string
		ready    int
		args     []string
		env      map[string]string
		wantCode int
		wantPath string
		wantErr  string // substring of stderr; "" means stderr must be empty
	}{
		{name: "ready on the env address, unspecified host probed on loopback", ready: 200,
			env: map[string]string{"KV_HTTP_ADDR": "0.0.0.0:" + port}, wantCode: 0, wantPath: "/readyz"},
		{name: "empty host", ready: 200,
			env: map[string]string{"KV_HTTP_ADDR": ":" + port}, wantCode: 0, wantPath: "/readyz"},
		{name: "flag wins over env", ready: 200, args: []string{"--http-addr", "127.0.0.1:" + port},
			env: map[string]string{"KV_HTTP_ADDR": "127.0.0.1:1"}, wantCode: 0, wantPath: "/readyz"},
		{name: "not ready: 503 with the API's reason", ready: 503,
			env: map[string]string{"KV_HTTP_ADDR": "[::]:" + port}, wantCode: 1, wantPath: "/readyz",
			wantErr: "503 Service Unavailable: This node knows no leader. (no_leader)"},
		{name: "other path", ready: 503, args: []string{"--path", "/healthz"},
			env: map[string]string{"KV_HTTP_ADDR": "0.0.0.0:" + port}, wantCode: 0, wantPath: "/healthz"},
		{name: "missing route is unhealthy", ready: 200, args: []string{"--path", "/nope"},
			env: map[string]string{"KV_HTTP_ADDR": "0.0.0.0:" + port}, wantCode: 1, wantPath: "/nope", wantErr: "404 Not Found: 404 page not found"},
		{name: "full URL", ready: 200, args: []string{"--url", srv.URL + "/healthz"}, wantCode: 0, wantPath: "/healthz"},
		{name: "timeout", ready: 200, args: []string{"--url", srv.URL + "/slow", "--timeout", "50ms"},
			wantCode: 1, wantErr: "deadline exceeded"},
		{name: "nothing listening", args: []string{"--http-addr", "127.0.0.1:1"}, wantCode: 1, wantErr: "connection refused"},
		{name: "bad timeout", args: []string{"--timeout", "0s"}, wantCode: 2, wantErr: "--timeout"},
		{name: "bad path", args: []string{"--path", "readyz"}, wantCode: 2, wantErr: "must start with /"},
		{name: "bad url", args: []string{"--url", "127.0.0.1:8080/readyz"}, wantCode: 1, wantErr: "--url"},
		{name: "stray argument", args: []string{"now"}, wantCode: 2, wantErr: "unexpected argument"},
		{name: "help", args: []string{"--help"}, wantCode: 0, wantErr: "Usage: kvnode health"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(int32(tc.ready))
			lastPath.Store("")
			var stderr bytes.Buffer
			code := runHealth(tc.args, func(k string) string { return tc.env[k] }, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if tc.wantPath != "" && lastPath.Load() != tc.wantPath {
				t.Errorf("probed %q, want %q", lastPath.Load(), tc.wantPath)
			}
			got := stderr.String()
			switch {
			case tc.wantErr == "" && got != "":
				t.Errorf("stderr %q, want nothing", got)
			case !strings.Contains(got, tc.wantErr):
				t.Errorf("stderr %q, want it to contain %q", got, tc.wantErr)
			}
			if code == 1 && strings.Count(got, "\n") != 1 {
				t.Errorf("reason is not one line: %q", got)
			}
		})
	}
}

// TestHealthOverTLS: KV_TLS_CERT switches the probe to https. On loopback it
// may skip verification; with KV_PEER_CA (or --ca) it verifies the chain, and
// a certificate from another CA fails.
func TestHealthOverTLS(t *testing.T) {
	var ready atomic.Int32
	ready.Store(200)
	var lastPath atomic.Value
	srv := httptest.NewUnstartedServer(healthServer(&ready, &lastPath))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing cases' handshake errors are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	dir := t.TempDir()
	goodCA := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(goodCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherCA, selfSignedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	badCA := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badCA, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
	}{
		{name: "plain http against TLS fails", env: map[string]string{"KV_HTTP_ADDR": addr}, wantCode: 1, wantErr: "400 Bad Request"},
		{name: "loopback skips verification", env: map[string]string{"KV_HTTP_ADDR": addr, "KV_TLS_CERT": "/tls/cert.pem"}, wantCode: 0},
		{name: "CA from env verifies", env: map[string]string{"KV_HTTP_ADDR": addr, "KV_TLS_CERT": "x", "KV_PEER_CA": goodCA}, wantCode: 0},
		{name: "CA flag verifies", args: []string{"--ca", goodCA}, env: map[string]string{"KV_HTTP_ADDR": addr, "KV_TLS_CERT": "x"}, wantCode: 0},
		{name: "unusable CA bundle", args: []string{"--ca", badCA}, env: map[string]string{"KV_HTTP_ADDR": addr, "KV_TLS_CERT": "x"}, wantCode: 1, wantErr: "no PEM certificates"},
		{name: "certificate from another CA", args: []string{"--ca", otherCA}, env: map[string]string{"KV_HTTP_ADDR": addr, "KV_TLS_CERT": "x"}, wantCode: 1, wantErr: "certificate signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := runHealth(tc.args, func(k string) string { return tc.env[k] }, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d stderr %q, want exit %d and %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
		})
	}

	// Verification is skipped only for loopback targets.
	for host, wantSkip := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "10.0.0.7": false, "kv-0.example": false} {
		u := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, "8080")}
		tc, err := healthOptions{}.tlsConfig(u)
		if err != nil || tc.InsecureSkipVerify != wantSkip {
			t.Errorf("%s: InsecureSkipVerify=%v err=%v, want %v", host, tc.InsecureSkipVerify, err, wantSkip)
		}
	}
}

// selfSignedCA returns a PEM CA certificate unrelated to httptest's.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
