// Package pki generates the certificates quorumkv needs for TLS: a cluster
// certificate authority and node certificates valid for both serving and
// dialing (peer mutual TLS) and for the HTTPS API. It is what `kvnode certs`
// runs, and what tests use to build TLS clusters. Keys are ECDSA P-256.
//
// It also defines the member identity a node certificate carries
// (identity.go): the URI SAN quorumkv://<cluster>/node/<id>, which the peer
// port checks on both ends of every connection.
//
// These are development certificates: the CA key sits next to the
// certificates it signed. Production deployments should issue node
// certificates from their own CA (see the README's security section).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is a certificate authority able to sign node certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates a self-signed CA valid for the given duration.
func NewCA(name string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"quorumkv"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// NodeCert is a signed certificate and its key, in PEM.
type NodeCert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate parses the pair for crypto/tls.
func (n NodeCert) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(n.CertPEM, n.KeyPEM)
}

// IssueNode signs a member certificate: Issue's certificate plus the member
// identity id as its URI subject alternative name.
func (ca *CA) IssueNode(id Identity, hosts []string, validFor time.Duration) (NodeCert, error) {
	if err := id.Validate(); err != nil {
		return NodeCert{}, err
	}
	return ca.issue(id.Node, hosts, id.URI(), validFor)
}

// Issue signs a certificate for name, valid for server and client
// authentication, naming hosts (DNS names or IP addresses) plus name itself
// (when it is a host name),
// localhost, 127.0.0.1 and ::1. It carries no member identity: the peer port
// refuses it (use IssueNode for a node).
func (ca *CA) Issue(name string, hosts []string, validFor time.Duration) (NodeCert, error) {
	return ca.issue(name, hosts, nil, validFor)
}

func (ca *CA) issue(name string, hosts []string, uri *url.URL, validFor time.Duration) (NodeCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return NodeCert{}, fmt.Errorf("pki: generate key for %s: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return NodeCert{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"quorumkv"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if uri != nil {
		tmpl.URIs = []*url.URL{uri}
	}
	seen := map[string]bool{}
	names := []string{"localhost", "127.0.0.1", "::1"}
	if hostLike(name) {
		names = append(names, name)
	}
	for _, h := range append(names, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return NodeCert{}, fmt.Errorf("pki: sign certificate for %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return NodeCert{}, fmt.Errorf("pki: encode key for %s: %w", name, err)
	}
	return NodeCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// KeyPEM returns the CA's private key in PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// WriteDevSet writes ca.pem, ca-key.pem and <node>.pem/<node>-key.pem for each
// node of cluster into dir (created 0700; keys 0600). It refuses to overwrite
// an existing CA, so re-running cannot silently split a cluster's trust.
func WriteDevSet(dir, cluster string, nodes, hosts []string, validFor time.Duration) error {
	if len(nodes) == 0 {
		return errors.New("pki: no node names given")
	}
	if err := ValidateClusterName(cluster); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
		return fmt.Errorf("pki: %s already holds a CA (ca.pem); use another directory, remove it, or add nodes to it (kvnode certs --add)", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create %s: %w", dir, err)
	}
	ca, err := NewCA("quorumkv dev CA", validFor)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	files := map[string][]byte{"ca.pem": ca.CertPEM, "ca-key.pem": caKey}
	if err := ca.issueFiles(files, cluster, nodes, hosts, validFor); err != nil {
		return err
	}
	return writeFiles(dir, files)
}

// AddNodes issues certificates for more nodes of cluster from the CA kept in
// dir (ca.pem and ca-key.pem, as WriteDevSet left them). A node that already
// has a certificate file in dir is refused rather than overwritten.
func AddNodes(dir, cluster string, nodes, hosts []string, validFor time.Duration) error {
	if len(nodes) == 0 {
		return errors.New("pki: no node names given")
	}
	if err := ValidateClusterName(cluster); err != nil {
		return err
	}
	ca, err := LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if _, err := os.Stat(filepath.Join(dir, n+".pem")); err == nil {
			return fmt.Errorf("pki: %s already has a certificate for %s; remove %s.pem and %s-key.pem first", dir, n, n, n)
		}
	}
	files := map[string][]byte{}
	if err := ca.issueFiles(files, cluster, nodes, hosts, validFor); err != nil {
		return err
	}
	return writeFiles(dir, files)
}

// LoadCA reads a CA certificate and its EC private key (PEM).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("pki: %s or %s is not PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA key (want an EC key as kvnode certs writes): %w", err)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: %s is not a CA certificate matching %s", certFile, keyFile)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

func (ca *CA) issueFiles(files map[string][]byte, cluster string, nodes, hosts []string, validFor time.Duration) error {
	for _, n := range nodes {
		if strings.ContainsAny(n, "/\\") || n == "ca" || n == "ca-key" || strings.HasPrefix(n, ".") {
			return fmt.Errorf("pki: %q cannot name a certificate file", n)
		}
		nc, err := ca.IssueNode(Identity{Cluster: cluster, Node: n}, hosts, validFor)
		if err != nil {
			return err
		}
		files[n+".pem"], files[n+"-key.pem"] = nc.CertPEM, nc.KeyPEM
	}
	return nil
}

func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "-key.pem") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			return fmt.Errorf("pki: write %s: %w", name, err)
		}
	}
	return nil
}

// hostLike reports whether s can be a DNS name in a certificate (a node id
// such as "n1" or "kv-0" is also named as a host, for HTTPS).
func hostLike(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	})
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n, nil
}
