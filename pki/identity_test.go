package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIdentityRoundTrip(t *testing.T) {
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []Identity{
		{"quorumkv", "n1"},
		{"prod.eu-1", "kv-0"},
		{"c", "a/b"},     // a slash in an id stays one path segment
		{"c", "n%2F1"},   // so does a percent sign
		{"c", "ünïcode"}, // any printable id
	} {
		nc, err := ca.IssueNode(id, nil, time.Hour)
		if err != nil {
			t.Fatalf("%v: %v", id, err)
		}
		b, _ := pem.Decode(nc.CertPEM)
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := IdentityOf(cert)
		if err != nil || got != id {
			t.Errorf("IdentityOf(%v) = %v, %v", id, got, err)
		}
	}
}

func TestIdentityRefusals(t *testing.T) {
	for _, name := range []string{"", "UPPER", "-lead", "trail-", "sp ace", "a_b", strings.Repeat("a", 64)} {
		if ValidateClusterName(name) == nil {
			t.Errorf("cluster name %q accepted", name)
		}
	}
	mk := func(uris ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, u := range uris {
			p, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, p)
		}
		return c
	}
	for name, cert := range map[string]*x509.Certificate{
		"none":          mk("spiffe://x/y"),
		"two":           mk("quorumkv://c/node/a", "quorumkv://c/node/b"),
		"no node":       mk("quorumkv://c/node/"),
		"extra segment": mk("quorumkv://c/node/a/b"),
		"wrong path":    mk("quorumkv://c/member/a"),
		"bad cluster":   mk("quorumkv://C_C/node/a"),
		"with port":     mk("quorumkv://c:1/node/a"),
	} {
		if id, err := IdentityOf(cert); err == nil {
			t.Errorf("%s: accepted as %v", name, id)
		}
	}
}

func TestAddNodesUsesTheSameCA(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDevSet(dir, "c", []string{"n1"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := WriteDevSet(dir, "c", []string{"n2"}, nil, time.Hour); err == nil {
		t.Fatal("WriteDevSet overwrote a CA")
	}
	if err := AddNodes(dir, "c", []string{"n4"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := AddNodes(dir, "c", []string{"n1"}, nil, time.Hour); err == nil {
		t.Fatal("AddNodes overwrote n1's certificate")
	}
	ca, err := LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	raw, err := os.ReadFile(filepath.Join(dir, "n4.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	cert, _ := x509.ParseCertificate(b.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("n4 does not chain to the CA: %v", err)
	}
	if id, err := IdentityOf(cert); err != nil || id != (Identity{"c", "n4"}) {
		t.Fatalf("n4 identity: %v %v", id, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "n4-key.pem")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("n4-key.pem mode %v", fi.Mode().Perm())
	}
}
