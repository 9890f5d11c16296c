package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/pki"
	"github.com/quorumkv/quorumkv/transport"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// tlsNode starts a single node with HTTPS and peer mutual TLS, wired as main does.
func tlsNode(t *testing.T, extra ...string) (*node, *http.Client, *lockedBuffer, string) {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := pki.WriteDevSet(certs, pki.DefaultClusterName, []string{"n1"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", filepath.Join(dir, "data"), "--api-key", "secret",
		"--peer-ca", filepath.Join(certs, "ca.pem"), "--peer-cert", filepath.Join(certs, "n1.pem"), "--peer-key", filepath.Join(certs, "n1-key.pem"),
		"--tls-cert", filepath.Join(certs, "n1.pem"), "--tls-key", filepath.Join(certs, "n1-key.pem")}, extra...)
	logs := &lockedBuffer{}
	n, _ := startTestNode(t, logs, args...)
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	return n, client, logs, certs
}

func httpsDo(t *testing.T, c *http.Client, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// forgeLayer dials the peer port over plain TCP, or TLS with tls set, and
// speaks our raft protocol byte: the best a peer without a cluster
// certificate can do.
type forgeLayer struct {
	net.Listener
	tls *tls.Config
}

func (l forgeLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		tc := tls.Client(conn, l.tls)
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	_, err = conn.Write([]byte{transport.ProtoRaft})
	return conn, err
}

// TestPeerPortAttacksAreRejected attacks a running TLS node's peer port and
// checks that nothing gets through: the term and data are unchanged and each
// rejection is logged.
func TestPeerPortAttacksAreRejected(t *testing.T) {
	n, client, logs, _ := tlsNode(t)
	base := "https://" + n.httpAddr
	waitUntil(t, 10*time.Second, "leadership", func() bool { return n.store.IsLeader() })
	if code, body := httpsDo(t, client, "PUT", base+"/kv/items/session", `{"value":"real"}`); code != 201 {
		t.Fatalf("PUT over HTTPS: %d %s", code, body)
	}
	before, err := n.store.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	peer := n.mux.Addr()

	// 1. Plain TCP garbage.
	conn, err := net.Dial("tcp", peer)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(bytes.Repeat([]byte{0x01, 0xff, 0x00}, 300))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()

	// 2. A TLS client without a certificate; 3. one with another CA's certificate.
	otherCA, err := pki.NewCA("intruder", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := otherCA.Issue("n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	icert, err := intruder.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []*tls.Config{
		{InsecureSkipVerify: true},
		{InsecureSkipVerify: true, Certificates: []tls.Certificate{icert}},
	} {
		if tc, err := tls.Dial("tcp", peer, cfg); err == nil {
			tc.Write([]byte{transport.ProtoRaft})
			tc.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, tc)
			tc.Close()
		}
	}

	// 4. A forged AppendEntries from a much higher term, sent with
	// hashicorp/raft's own network transport, in plain TCP and with the
	// intruder CA's certificate.
	req := &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ID: []byte("evil"), Addr: []byte("127.0.0.1:1")},
		Term:         before.Term + 100,
		Leader:       []byte("127.0.0.1:1"),
		PrevLogEntry: before.CommitIndex, PrevLogTerm: before.Term,
		Entries:           []*raft.Log{{Index: before.CommitIndex + 1, Term: before.Term + 100, Type: raft.LogCommand, Data: []byte("garbage")}},
		LeaderCommitIndex: before.CommitIndex + 1,
	}
	for _, cfg := range []*tls.Config{nil, {InsecureSkipVerify: true, Certificates: []tls.Certificate{icert}}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		forge := raft.NewNetworkTransport(forgeLayer{ln, cfg}, 1, 2*time.Second, io.Discard)
		var resp raft.AppendEntriesResponse
		err = forge.AppendEntries("n1", raft.ServerAddress(peer), req, &resp)
		forge.Close()
		if err == nil {
			t.Fatalf("forged AppendEntries (tls=%v) got an answer: %+v", cfg != nil, resp)
		}
	}

	after, err := n.store.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.State != "Leader" {
		t.Fatalf("attacks changed raft state: before term %d, after term %d state %s", before.Term, after.Term, after.State)
	}
	if code, body := httpsDo(t, client, "GET", base+"/kv/items/session", ""); code != 200 || !bytes.Contains(body, []byte(`"value":"real"`)) {
		t.Fatalf("data after attacks: %d %s", code, body)
	}
	waitUntil(t, 10*time.Second, "five logged rejections", func() bool {
		return logs.count("rejected peer connection") >= 5
	})
}

// TestSlowAndIdleClientsDoNotStopTheNode: a client trickling its headers is
// cut off by the header deadline, and 500 idle connections do not stop the
// node answering.
func TestSlowAndIdleClientsDoNotStopTheNode(t *testing.T) {
	n, _ := startTestNode(t, nil, "--data-dir", t.TempDir(), "--api-key", "secret", "--http-header-timeout", "1s")

	slow, err := net.Dial("tcp", n.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	began := time.Now()
	fmt.Fprintf(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan time.Duration, 1)
	go func() {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(slow, "X-Slow-%d: y\r\n", i); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond) // the trickle is the attack
			if time.Since(began) > 8*time.Second {
				break
			}
		}
	}()
	go func() {
		slow.SetReadDeadline(time.Now().Add(8 * time.Second))
		io.Copy(io.Discard, bufio.NewReader(slow))
		closed <- time.Since(began)
	}()

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 500; i++ {
		c, err := net.Dial("tcp", n.httpAddr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	code, body := do(t, "GET", "http://"+n.httpAddr+"/cluster/status", "")
	var st struct {
		Data struct{ NodeID string } `json:"data"`
	}
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Data.NodeID != "n1" {
		t.Fatalf("with 500 idle connections: %d %s", code, body)
	}
	if d := <-closed; d > 5*time.Second {
		t.Fatalf("slow client held its connection %s; want cut after the 1s header deadline", d)
	}
}
