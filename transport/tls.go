package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

// PeerTLS is the mutual TLS of the peer port: every connection, raft or RPC,
// runs inside TLS 1.3 and both ends present a certificate signed by the
// cluster CA that carries a member identity of this cluster
// (pki.Identity, the URI SAN quorumkv://<cluster>/node/<id>). Without it,
// anyone who reaches the peer port can append entries to the raft log.
//
// What each side checks (DESIGN.md, "Peer identity"):
//   - the accepting side requires a client certificate from the CA whose
//     identity names this cluster; RPC handlers learn the caller's node id
//     through PeerID(ctx);
//   - the dialing side verifies the server's certificate against the CA
//     (not against the host name: the identity replaces it) and requires
//     its identity to name this cluster and, when the resolver installed
//     with ExpectPeers knows the address, the node id expected there.
type PeerTLS struct {
	// Server verifies dialers: RequireAndVerifyClientCert against the CA,
	// then the identity's cluster.
	Server *tls.Config
	// Client is used to dial peers. Its chain verification runs in
	// VerifyConnection, which dialers set per connection (clientConfig).
	Client *tls.Config
	// Self is this node's identity, from its own certificate.
	Self pki.Identity

	roots  *x509.CertPool
	expect atomic.Pointer[func(addr string) (string, bool)]
}

// ErrPeerIdentity: a peer's certificate was valid for the CA but does not
// name the member expected (another cluster, another node, or none).
var ErrPeerIdentity = errors.New("transport: peer certificate identity refused")

// NewPeerTLS builds a PeerTLS from the cluster CA (PEM) and this node's
// certificate, which must be signed by that CA, be valid for both server and
// client authentication, and carry the identity self. A mismatch is refused
// here, at start, rather than at the first connection.
func NewPeerTLS(caPEM []byte, cert tls.Certificate, self pki.Identity) (*PeerTLS, error) {
	if err := self.Validate(); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("transport: peer CA: no PEM certificate found")
	}
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return nil, errors.New("transport: peer certificate is empty")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("transport: parse peer certificate: %w", err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("transport: this node's peer certificate does not verify against the peer CA for both server and client authentication: %w", err)
		}
	}
	got, err := pki.IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("transport: this node's peer certificate: %w", err)
	}
	if got != self {
		return nil, fmt.Errorf("transport: this node's peer certificate is for %s, but this node is %s (check --id and --cluster-name, or issue a certificate for it)", got, self)
	}
	p := &PeerTLS{Self: self, roots: pool}
	p.Server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := p.memberOf(cs.PeerCertificates)
			return err
		},
	}
	p.Client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
	return p, nil
}

// LoadPeerTLS reads the CA, certificate and key files (PEM) of node self.
func LoadPeerTLS(caFile, certFile, keyFile string, self pki.Identity) (*PeerTLS, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("transport: read peer CA: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load peer certificate: %w", err)
	}
	return NewPeerTLS(caPEM, cert, self)
}

// ExpectPeers installs the resolver dialers use to learn which node id must
// answer at an address: f returns the id and true when it knows the address.
// The store installs one that reads the raft configuration. An address f does
// not know is accepted from any member of the cluster. Safe to call at any
// time; nil removes the resolver.
func (p *PeerTLS) ExpectPeers(f func(addr string) (id string, ok bool)) {
	if f == nil {
		p.expect.Store(nil)
		return
	}
	p.expect.Store(&f)
}

func (p *PeerTLS) expectedAt(addr string) string {
	if f := p.expect.Load(); f != nil {
		if id, ok := (*f)(addr); ok {
			return id
		}
	}
	return ""
}

// memberOf returns the identity of the leaf of a verified chain when it
// names a member of this cluster.
func (p *PeerTLS) memberOf(chain []*x509.Certificate) (pki.Identity, error) {
	if len(chain) == 0 {
		return pki.Identity{}, fmt.Errorf("%w: no certificate", ErrPeerIdentity)
	}
	id, err := pki.IdentityOf(chain[0])
	if err != nil {
		return pki.Identity{}, fmt.Errorf("%w: %v", ErrPeerIdentity, err)
	}
	if id.Cluster != p.Self.Cluster {
		return pki.Identity{}, fmt.Errorf("%w: %s belongs to cluster %q, not %q", ErrPeerIdentity, id, id.Cluster, p.Self.Cluster)
	}
	return id, nil
}

// clientConfig returns the dialing configuration for one connection: the
// server's chain is verified against the CA for server authentication, then
// its identity must name this cluster and, when wantID is not empty, that node.
func (p *PeerTLS) clientConfig(addr, wantID string) *tls.Config {
	cfg := p.Client.Clone()
	// The chain is verified below, against the CA but not against a host
	// name: the member identity is what authenticates a peer, and peers are
	// dialed by whatever name or address the configuration holds.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: %s sent no certificate", ErrPeerIdentity, addr)
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("transport: %s: %w", addr, err)
		}
		id, err := p.memberOf(cs.PeerCertificates)
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		if wantID != "" && id.Node != wantID {
			return fmt.Errorf("%w: %s answered as node %q, expected %q", ErrPeerIdentity, addr, id.Node, wantID)
		}
		return nil
	}
	return cfg
}

// clientHandshake runs the TLS client handshake on a freshly dialed conn to
// addr, expecting the node the resolver names for addr. On error conn is
// closed.
func (p *PeerTLS) clientHandshake(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	return p.handshakeAs(ctx, conn, addr, p.expectedAt(addr))
}

func (p *PeerTLS) handshakeAs(ctx context.Context, conn net.Conn, addr, wantID string) (net.Conn, error) {
	tc := tls.Client(conn, p.clientConfig(addr, wantID))
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// VerifyPeer proves that the node listening at addr holds the certificate of
// member wantID of this cluster: it dials addr, completes the TLS handshake
// (the server signs it with its key), checks the identity and hangs up. The
// store uses it before it adds or moves a server to addr.
func (p *PeerTLS) VerifyPeer(ctx context.Context, addr, wantID string) error {
	if wantID == "" {
		return errors.New("transport: VerifyPeer needs a node id")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDialTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("transport: verify %s at %s: %w", wantID, addr, err)
	}
	tc, err := p.handshakeAs(ctx, conn, addr, wantID)
	if err != nil {
		return err
	}
	// Say goodbye politely: the protocol byte of RPC, then close, so the
	// other side logs a closed connection rather than a timeout.
	tc.SetWriteDeadline(time.Now().Add(time.Second))
	tc.Write([]byte{ProtoRPC})
	return tc.Close()
}

type peerKey struct{}

// withPeer returns ctx carrying the node id of the authenticated peer on
// conn, when conn is a TLS connection whose handshake verified one.
func (m *Mux) withPeer(ctx context.Context, conn net.Conn) context.Context {
	tc, ok := conn.(*tls.Conn)
	if !ok || m.cfg.TLS == nil {
		return ctx
	}
	id, err := m.cfg.TLS.memberOf(tc.ConnectionState().PeerCertificates)
	if err != nil {
		return ctx // unreachable: the handshake ran the same check
	}
	return context.WithValue(ctx, peerKey{}, id.Node)
}

// PeerID returns the node id of the authenticated peer that sent the RPC
// being handled: the id in its verified client certificate. ok is false
// without peer TLS (no peer is authenticated) and outside an RPC handler.
func PeerID(ctx context.Context) (id string, ok bool) {
	id, ok = ctx.Value(peerKey{}).(string)
	return id, ok
}
