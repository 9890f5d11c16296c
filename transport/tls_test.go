package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/pki"
)

// testCluster is the cluster name of the test certificates.
const testCluster = "test"

// testPeerTLS issues a member certificate for node of testCluster from ca
// and builds its PeerTLS.
func testPeerTLS(t *testing.T, ca *pki.CA, node string) *PeerTLS {
	t.Helper()
	return testPeerTLSIn(t, ca, testCluster, node)
}

func testPeerTLSIn(t *testing.T, ca *pki.CA, cluster, node string) *PeerTLS {
	t.Helper()
	id := pki.Identity{Cluster: cluster, Node: node}
	nc, err := ca.IssueNode(id, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := nc.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPeerTLS(ca.CertPEM, cert, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.b.Bytes(), []byte(sub))
}

func TestMutualTLSCarriesRPCAndRaft(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	a := newMux(t, Config{TLS: testPeerTLS(t, ca, "a")})
	b := newMux(t, Config{TLS: testPeerTLS(t, ca, "b")})
	a.SetRPCHandler(echoHandler)

	c := newClient(t, ClientConfig{TLS: b.PeerTLS()})
	resp, err := c.Call(ctxTimeout(t, 5*time.Second), a.Addr(), 9, []byte("over tls"))
	if err != nil || !bytes.Equal(resp, append([]byte{9}, "over tls"...)) {
		t.Fatalf("Call over mTLS: %q %v", resp, err)
	}

	conn, err := b.RaftLayer().Dial(raft.ServerAddress(a.Addr()), 2*time.Second)
	if err != nil {
		t.Fatalf("raft dial over mTLS: %v", err)
	}
	defer conn.Close()
	if _, ok := conn.(*trackedConn).Conn.(*tls.Conn); !ok {
		t.Fatalf("raft connection is %T, want TLS", conn.(*trackedConn).Conn)
	}
	accepted, err := a.RaftLayer().Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer accepted.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	accepted.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := accepted.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("raft bytes over mTLS: %q %v", buf, err)
	}
}

func TestMutualTLSRejectsUnauthenticatedPeers(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	logs := &syncBuffer{}
	m := newMux(t, Config{TLS: testPeerTLS(t, ca, "server"), HandshakeTimeout: time.Second,
		Logger: slogTo(logs)})
	m.SetRPCHandler(echoHandler)

	// Plain TCP with a valid protocol byte and frame: not TLS, rejected.
	plain := dialRaw(t, m.Addr())
	plain.Write([]byte{ProtoRPC, 0, 0, 0, 30})
	expectClosedByPeer(t, plain, 3*time.Second)

	// A plain-TCP client of our own protocol fails to get an answer.
	c := newClient(t, ClientConfig{})
	if _, err := c.Call(ctxTimeout(t, 3*time.Second), m.Addr(), 1, []byte("x")); err == nil {
		t.Fatal("plain client got an answer from a TLS peer port")
	}

	// TLS without a client certificate, and with one from another CA.
	other := testPeerTLS(t, newTestCA(t, "intruder"), "intruder")
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": {MinVersion: tls.VersionTLS13, InsecureSkipVerify: true},
		"certificate from another CA": {MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
			Certificates: other.Client.Certificates},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", m.Addr(), cfg)
			if err != nil {
				return // rejected during the handshake
			}
			defer conn.Close()
			conn.Write([]byte{ProtoRPC})
			expectClosedByPeer(t, conn, 3*time.Second)
		})
	}
	// The intruder's own client cannot call either (and cannot verify us).
	ic := newClient(t, ClientConfig{TLS: other})
	_, err := ic.Call(ctxTimeout(t, 3*time.Second), m.Addr(), 1, []byte("x"))
	if !errors.Is(err, ErrNotSent) {
		t.Fatalf("intruder call: %v", err)
	}
	waitFor(t, 5*time.Second, "rejections in the log", func() bool {
		return logs.count("rejected peer connection") >= 4
	})
}

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
