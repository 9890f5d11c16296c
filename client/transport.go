package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultMaxConnsPerNode is the connection pool size per node when
// Config.MaxConnsPerNode is 0.
const DefaultMaxConnsPerNode = 64

// TLSConfig configures HTTPS to the nodes. The zero value verifies the
// servers against the system's roots and presents no client certificate.
type TLSConfig struct {
	// CAFile is a PEM file of the certificate authorities that sign the
	// nodes' certificates (scripts/cluster.sh start --tls: certs/ca.pem).
	// It replaces the system roots, as does RootCAs; both may be given.
	CAFile string
	// RootCAs is a pool of trusted authorities, for a caller that holds them
	// in memory.
	RootCAs *x509.CertPool

	// CertFile and KeyFile are a PEM client certificate and its key,
	// presented to nodes that ask for one. Both or neither.
	CertFile string
	KeyFile  string
	// Certificate is a client certificate held in memory, instead of files.
	Certificate *tls.Certificate

	// ServerName is the name the nodes' certificates must carry, when it is
	// not the endpoint's host (a node reached through an IP address or a
	// tunnel).
	ServerName string

	// InsecureSkipVerify accepts any server certificate: the connection is
	// encrypted but anyone on the path can read and change it, API key
	// included. For throw-away test setups only; never set implicitly.
	InsecureSkipVerify bool
}

// clientConfig builds the crypto/tls configuration, reading the files.
func (t *TLSConfig) clientConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" || t.RootCAs != nil {
		pool := x509.NewCertPool()
		if t.RootCAs != nil {
			pool = t.RootCAs.Clone()
		}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("client: reading the CA file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", t.CAFile)
			}
		}
		tc.RootCAs = pool
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return nil, errors.New("client: TLS CertFile and KeyFile go together: give both (a client certificate and its key) or neither")
	case t.CertFile != "" && t.Certificate != nil:
		return nil, errors.New("client: TLS Certificate and CertFile/KeyFile cannot both be set")
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client: loading the client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case t.Certificate != nil:
		tc.Certificates = []tls.Certificate{*t.Certificate}
	}
	return tc, nil
}

// newTransport returns the HTTP/1.1 transport of a Client that brings no
// http.Client of its own. Every node gets a pool of conns connections, all of
// which stay open when idle: a caller never dials while a warm connection is
// free, and callers beyond conns in flight to one node wait for one rather
// than open connections that the pool would close again right after (the
// default transport keeps 2 idle per host, so under concurrency it dials
// and closes constantly). HTTP/2 is off: the API's small requests gain
// nothing from it and one TCP connection would carry every caller.
func newTransport(conns, nodes int, tc *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns * nodes,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSClientConfig:       tc,
	}
}
