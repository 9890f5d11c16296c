package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// joinURLs parses --join: one or more comma-separated base URLs of any
// members' HTTP APIs, tried in turn.
func joinURLs(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u == "" {
			continue
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("--join %q: want http://host:port or https://host:port", u)
		}
		out = append(out, u)
	}
	return out, nil
}

// advertisedHTTPAddr is the HTTP address this node registers with the
// cluster: --advertise-http-addr, else the listener's address with the
// scheme it serves.
func advertisedHTTPAddr(o options, ln net.Listener) string {
	if o.advertiseHTTPAddr != "" {
		return o.advertiseHTTPAddr
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

// joinClient is the HTTP client of the join loop. For an https cluster it
// trusts the system roots plus --peer-ca (the development CA of
// `kvnode certs` signs both kinds of certificate).
func joinClient(o options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.peerCA != "" {
		pem, err := os.ReadFile(o.peerCA)
		if err != nil {
			return nil, fmt.Errorf("--peer-ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--peer-ca %s: no PEM certificate", o.peerCA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}

type joinBody struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peerAddr"`
	HTTPAddr string `json:"httpAddr,omitempty"`
}

// joinLoop asks the cluster to add this node (POST /cluster/nodes), trying
// the URLs in turn with exponential backoff (200 ms to 10 s) until one
// accepts or ctx ends. Every failure is retried: a 401 (wrong API key) or
// 409 (peer address taken) needs an operator, and is logged as an error
// saying so, but the node keeps trying so fixing the cluster side is enough.
func joinLoop(ctx context.Context, client *http.Client, urls []string, key string, body joinBody, log *slog.Logger) {
	payload, _ := json.Marshal(body)
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		url := urls[attempt%len(urls)]
		status, msg, err := postJoin(ctx, client, url, key, payload)
		switch {
		case err == nil && (status == http.StatusOK || status == http.StatusCreated):
			log.Info("joined the cluster", "via", url, "answer", msg)
			return
		case err != nil:
			log.Warn("join request failed; retrying", "via", url, "err", err, "retry_in", backoff)
		case status == http.StatusUnauthorized || status == http.StatusConflict || status == http.StatusBadRequest:
			log.Error("cluster refused the join; fix the cause (API key, or remove the node holding this id or address); retrying", "via", url, "status", status, "answer", msg)
		default:
			log.Warn("join not accepted yet; retrying", "via", url, "status", status, "answer", msg, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func postJoin(ctx context.Context, client *http.Client, url, key string, payload []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/cluster/nodes", bytes.NewReader(payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
