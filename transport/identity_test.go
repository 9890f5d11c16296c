package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/pki"
)

// TestPeerIdentityIsCheckedOnBothSides: a certificate signed by the cluster's
// own CA is not enough to be a peer; it must carry a member identity of this
// cluster, and a dialer that knows which node should answer at an address
// refuses any other.
func TestPeerIdentityIsCheckedOnBothSides(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "shared")
	logs := &syncBuffer{}
	srv := newMux(t, Config{TLS: testPeerTLS(t, ca, "a"), HandshakeTimeout: time.Second, Logger: slogTo(logs)})
	var mu sync.Mutex
	var seen []string
	srv.SetRPCHandler(func(ctx context.Context, method uint8, req []byte) ([]byte, error) {
		id, ok := PeerID(ctx)
		mu.Lock()
		seen = append(seen, id)
		mu.Unlock()
		if !ok {
			return nil, errors.New("no peer id")
		}
		return []byte(id), nil
	})

	// A member of the cluster calls; the handler learns its node id.
	member := testPeerTLS(t, ca, "b")
	c := newClient(t, ClientConfig{TLS: member})
	resp, err := c.Call(ctxTimeout(t, 5*time.Second), srv.Addr(), 1, nil)
	if err != nil || string(resp) != "b" {
		t.Fatalf("member call: %q %v, want the handler to see peer id b", resp, err)
	}

	// Same CA, no member identity (another workload), and a member of
	// another cluster: refused by the server before any handler runs.
	plainCert, err := ca.Issue("web-frontend", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	workload, err := plainCert.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	otherCluster := testPeerTLSIn(t, ca, "staging", "b")
	for name, cert := range map[string]tls.Certificate{
		"same CA, no identity":   workload,
		"same CA, other cluster": otherCluster.Client.Certificates[0],
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
			if err == nil {
				defer conn.Close()
				conn.Write([]byte{ProtoRPC, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0})
				expectClosedByPeer(t, conn, 3*time.Second)
			}
		})
	}
	// The other cluster's own client does not accept our server either.
	oc := newClient(t, ClientConfig{TLS: otherCluster})
	if _, err := oc.Call(ctxTimeout(t, 3*time.Second), srv.Addr(), 1, nil); !errors.Is(err, ErrNotSent) {
		t.Fatalf("other cluster's call: %v, want ErrNotSent", err)
	}
	mu.Lock()
	if len(seen) != 1 {
		t.Errorf("handler ran %d times (%v), want once: refused peers must not reach it", len(seen), seen)
	}
	mu.Unlock()
	waitFor(t, 5*time.Second, "identity refusals in the log", func() bool {
		return logs.count("identity refused") >= 2
	})

	// The dialer: when the resolver says node "c" lives at srv's address,
	// "a" answering there is refused, for RPC and for raft alike.
	member.ExpectPeers(func(addr string) (string, bool) { return "c", addr == srv.Addr() })
	c2 := newClient(t, ClientConfig{TLS: member})
	_, err = c2.Call(ctxTimeout(t, 3*time.Second), srv.Addr(), 1, nil)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrPeerIdentity) || !strings.Contains(err.Error(), `expected "c"`) {
		t.Fatalf("call expecting c, served by a: %v", err)
	}
	dialer := newMux(t, Config{TLS: member})
	if conn, err := dialer.RaftLayer().Dial(raft.ServerAddress(srv.Addr()), 2*time.Second); err == nil {
		conn.Close()
		t.Fatal("raft dial expecting c reached a")
	} else if !errors.Is(err, ErrPeerIdentity) {
		t.Fatalf("raft dial expecting c: %v, want ErrPeerIdentity", err)
	}
	member.ExpectPeers(func(addr string) (string, bool) { return "a", addr == srv.Addr() })
	conn, err := dialer.RaftLayer().Dial(raft.ServerAddress(srv.Addr()), 2*time.Second)
	if err != nil {
		t.Fatalf("raft dial expecting a: %v", err)
	}
	conn.Close()

	// VerifyPeer: proof that the node at an address holds a given identity.
	if err := member.VerifyPeer(ctxTimeout(t, 3*time.Second), srv.Addr(), "a"); err != nil {
		t.Fatalf("VerifyPeer a: %v", err)
	}
	if err := member.VerifyPeer(ctxTimeout(t, 3*time.Second), srv.Addr(), "n9"); !errors.Is(err, ErrPeerIdentity) {
		t.Fatalf("VerifyPeer n9 at a's address: %v, want ErrPeerIdentity", err)
	}
}

// TestNewPeerTLSChecksOwnCertificate: a node given a certificate for another
// id, another cluster, no identity or another CA refuses to start.
func TestNewPeerTLSChecksOwnCertificate(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	issue := func(ca *pki.CA, id pki.Identity) tls.Certificate {
		nc, err := ca.IssueNode(id, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := nc.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	self := pki.Identity{Cluster: "prod", Node: "n1"}
	plain, _ := ca.Issue("n1", nil, time.Hour)
	plainCert, _ := plain.TLSCertificate()
	for name, tc := range map[string]struct {
		cert tls.Certificate
		want string
	}{
		"another node":    {issue(ca, pki.Identity{Cluster: "prod", Node: "n2"}), "is for quorumkv://prod/node/n2"},
		"another cluster": {issue(ca, pki.Identity{Cluster: "dev", Node: "n1"}), "is for quorumkv://dev/node/n1"},
		"no identity":     {plainCert, "no quorumkv member identity"},
		"another CA":      {issue(other, self), "does not verify"},
	} {
		if _, err := NewPeerTLS(ca.CertPEM, tc.cert, self); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	if _, err := NewPeerTLS(ca.CertPEM, issue(ca, self), self); err != nil {
		t.Fatalf("own certificate: %v", err)
	}
}
