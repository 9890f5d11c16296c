package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// PeerTLS is the mutual TLS of the peer port: every connection, raft or RPC,
// runs inside TLS 1.3 and both ends present a certificate signed by the
// cluster CA. Without it, anyone who reaches the peer port can append entries
// to the raft log.
type PeerTLS struct {
	// Server verifies dialers: RequireAndVerifyClientCert against the CA.
	Server *tls.Config
	// Client is used to dial peers; the peer's certificate must be signed by
	// the CA and name the host being dialed.
	Client *tls.Config
}

// NewPeerTLS builds a PeerTLS from the cluster CA (PEM) and this node's
// certificate, which must be valid for both server and client authentication.
func NewPeerTLS(caPEM []byte, cert tls.Certificate) (*PeerTLS, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("transport: peer CA: no PEM certificate found")
	}
	return &PeerTLS{
		Server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
		},
		Client: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
		},
	}, nil
}

// LoadPeerTLS reads the CA, certificate and key files (PEM) of a node.
func LoadPeerTLS(caFile, certFile, keyFile string) (*PeerTLS, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("transport: read peer CA: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load peer certificate: %w", err)
	}
	return NewPeerTLS(caPEM, cert)
}

// clientHandshake runs the TLS client handshake on a freshly dialed conn,
// verifying the peer against the host part of addr. On error conn is closed.
func (p *PeerTLS) clientHandshake(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	cfg := p.Client.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
