package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// healthOptions is what `kvnode health` reads from its command line and the
// environment. It shares the node's environment (KV_HTTP_ADDR, KV_TLS_CERT),
// so a container HEALTHCHECK needs no arguments: it probes the node that the
// same environment configured.
type healthOptions struct {
	url      string
	path     string
	httpAddr string
	ca       string
	timeout  time.Duration
	tls      bool
}

// runHealth is `kvnode health`: one GET against this node's own API, exit 0 on
// a 2xx answer, 1 with a one-line reason on stderr otherwise, 2 on bad usage.
// It exists so that an image without a shell or curl (FROM scratch) can still
// have a HEALTHCHECK.
func runHealth(args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parseHealthFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvnode health: %v\n", err)
		return 2
	}
	if err := probe(o); err != nil {
		fmt.Fprintf(stderr, "kvnode health: %v\n", err)
		return 1
	}
	return 0
}

func parseHealthFlags(args []string, getenv func(string) string, stderr io.Writer) (healthOptions, error) {
	var o healthOptions
	fs := flag.NewFlagSet("kvnode health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "full URL to probe (overrides --http-addr and --path)")
	fs.StringVar(&o.path, "path", "/readyz", "path to probe on this node's API (/readyz: ready to serve; /healthz: process up)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "the node's --http-addr (default: $KV_HTTP_ADDR, else 127.0.0.1:8080); an unspecified host (0.0.0.0, ::) is probed on 127.0.0.1")
	fs.StringVar(&o.ca, "ca", "", "PEM CA bundle to verify the node's HTTPS certificate (default: $KV_PEER_CA)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "deadline for the whole probe")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode health [flags]\n\nGETs this node's /readyz and exits 0 on a 2xx answer, 1 otherwise (with the\nreason on stderr). Meant for container health checks: it reads the node's\nenvironment (KV_HTTP_ADDR; KV_TLS_CERT switches to https, KV_PEER_CA verifies).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see kvnode health --help)", fs.Arg(0))
	}
	if o.httpAddr == "" {
		o.httpAddr = getenv("KV_HTTP_ADDR")
	}
	if o.httpAddr == "" {
		o.httpAddr = "127.0.0.1:8080"
	}
	if o.ca == "" {
		o.ca = getenv("KV_PEER_CA")
	}
	o.tls = getenv("KV_TLS_CERT") != ""
	if o.timeout <= 0 {
		return o, fmt.Errorf("--timeout must be positive, got %s", o.timeout)
	}
	if !strings.HasPrefix(o.path, "/") {
		return o, fmt.Errorf("--path %q must start with /", o.path)
	}
	return o, nil
}

// target is the URL to probe: --url as given, or the node's own address with
// an unspecified listen host replaced by loopback (a node listening on
// 0.0.0.0:8080 is reachable on 127.0.0.1:8080 from inside its container).
func (o healthOptions) target() (*url.URL, error) {
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want http(s)://host:port/path", o.url)
		}
		return u, nil
	}
	host, port, err := net.SplitHostPort(o.httpAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP address %q: %w", o.httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: o.path}, nil
}

// tlsConfig verifies the node's certificate against --ca when given. The
// certificate's chain is checked but not its names: the probe dials whatever
// address the node listens on (usually loopback), which is rarely a name in
// the certificate. Without a CA, verification is skipped only for a loopback
// target, where there is no network for anyone to sit on.
func (o healthOptions) tlsConfig(u *url.URL) (*tls.Config, error) {
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificates", o.ca)
		}
		return &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by VerifyConnection below: chain only, no name
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("server sent no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
				return err
			},
		}, nil
	}
	if isLoopback(u.Hostname()) {
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}, nil // system roots, full verification
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func probe(o healthOptions) error {
	u, err := o.target()
	if err != nil {
		return err
	}
	tc, err := o.tlsConfig(u)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tc, Proxy: nil, DisableKeepAlives: true},
		// A redirect would mean we probed the wrong thing; the API never sends one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error // says "Get URL: ..." again; keep only the cause
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return fmt.Errorf("GET %s: %s%s", u, resp.Status, reason(body))
}

// reason extracts a short explanation from an error body: the API's
// {"error": {"message": ...}} or a {"reason": ...} when present, else the
// first line of the body.
func reason(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.Error.Message != "":
			return fmt.Sprintf(": %s (%s)", e.Error.Message, e.Error.Code)
		case e.Reason != "":
			return ": " + e.Reason
		}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	if line == "" {
		return ""
	}
	return ": " + line
}
