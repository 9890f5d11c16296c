package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// IdentityScheme is the URI scheme of a member identity.
const IdentityScheme = "quorumkv"

// DefaultClusterName is the cluster name used when none is configured.
const DefaultClusterName = "quorumkv"

// Identity names one member of one cluster. A node certificate carries it as
// exactly one URI subject alternative name, quorumkv://<cluster>/node/<id>
// (the id path-escaped), so the same CA can issue certificates for several
// clusters, and for other workloads, without making them peers of each other.
type Identity struct {
	Cluster string
	Node    string
}

// URI returns the identity as a URI subject alternative name.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: IdentityScheme, Host: id.Cluster, Path: "/node/" + id.Node, RawPath: "/node/" + url.PathEscape(id.Node)}
}

func (id Identity) String() string { return id.URI().String() }

// Validate checks the cluster name and node id.
func (id Identity) Validate() error {
	if err := ValidateClusterName(id.Cluster); err != nil {
		return err
	}
	switch {
	case id.Node == "":
		return errors.New("pki: node id is empty")
	case len(id.Node) > 256:
		return errors.New("pki: node id is longer than 256 bytes")
	case strings.ContainsFunc(id.Node, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("pki: node id %q contains spaces or control characters", id.Node)
	}
	return nil
}

// ValidateClusterName accepts 1-63 lower-case letters, digits, '-' and '.',
// starting and ending with a letter or digit (it is the host of the URI).
func ValidateClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("pki: cluster name %q: want 1 to 63 characters", name)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '-' && r != '.' || i == 0 || i == len(name)-1) {
			return fmt.Errorf("pki: cluster name %q: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", name)
		}
	}
	return nil
}

// ErrNoIdentity: a certificate carries no quorumkv member identity.
var ErrNoIdentity = errors.New("certificate has no quorumkv member identity (URI SAN quorumkv://<cluster>/node/<id>)")

// IdentityOf returns the member identity a certificate carries. A
// certificate with none, with more than one, or with a malformed one has no
// usable identity and is refused.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != IdentityScheme {
			continue
		}
		seg, ok := strings.CutPrefix(u.EscapedPath(), "/node/")
		if !ok || strings.Contains(seg, "/") || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" {
			return Identity{}, fmt.Errorf("malformed quorumkv identity %q", u.String())
		}
		node, err := url.PathUnescape(seg)
		if err != nil {
			return Identity{}, fmt.Errorf("malformed quorumkv identity %q: %v", u.String(), err)
		}
		id := Identity{Cluster: u.Host, Node: node}
		if err := id.Validate(); err != nil {
			return Identity{}, fmt.Errorf("malformed quorumkv identity %q: %v", u.String(), err)
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		return found[0], nil
	}
	return Identity{}, fmt.Errorf("certificate carries %d quorumkv identities; want exactly one", len(found))
}
