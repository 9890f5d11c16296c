package e2e

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/pki"
	"github.com/quorumkv/quorumkv/transport"
)

// RPC methods of the store's peer protocol (store/rpc.go, membership_rpc.go),
// as an attacker would send them.
const (
	methodWrite  = 1
	methodJoin   = 16
	methodRemove = 17
)

func writeFrame(key string, value []byte) []byte {
	b := []byte{1, byte(fsm.OpSet)} // format 1: a plain set
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	return binary.AppendVarint(b, 0) // no TTL
}

func joinFrame(register bool, id, peerAddr, httpAddr string) []byte {
	mode := byte(0)
	if register {
		mode = 1
	}
	b := []byte{1, mode}
	for _, s := range []string{id, peerAddr, httpAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func removeFrame(id string) []byte {
	return append(binary.AppendUvarint([]byte{1}, uint64(len(id))), id...)
}

// rawFrame is one RPC request on the wire: the protocol byte, then
// [u32 length][u64 id][u8 method][i64 timeout][payload] (transport/DESIGN.md).
func rawFrame(method uint8, payload []byte) []byte {
	b := []byte{transport.ProtoRPC}
	b = binary.BigEndian.AppendUint32(b, uint32(17+len(payload)))
	b = binary.BigEndian.AppendUint64(b, 1)
	b = append(b, method)
	b = binary.BigEndian.AppendUint64(b, 0)
	return append(b, payload...)
}

type nodeView struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peerAddr"`
	HTTPAddr string `json:"httpAddr"`
	Suffrage string `json:"suffrage"`
}

// TestPeerPortRefusesAttackers runs the default cluster of scripts/cluster.sh
// (peer mutual TLS, no flags) and attacks the leader's peer port the ways a
// neighbour on the peer network could: plaintext RPC frames (write, join,
// remove), TLS with certificates the cluster's own CA issued to another
// cluster and to another workload, and a real member's certificate used to
// join or register under another member's id. Each is refused and the
// cluster's members, HTTP addresses and data are unchanged. A control run
// against a node started with --insecure-peer shows the same plaintext frames
// do work where nothing authenticates peers, so the refusals are the TLS's.
func TestPeerPortRefusesAttackers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster; skipped with -short")
	}
	dir := t.TempDir()
	const key = "peer-attack-key"
	script := clusterScript(t, dir, 24080, 24180, key)
	script("start")
	bin := filepath.Join(dir, "bin", "kvnode")
	api := func(method, url, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	nodes := func(base string) []nodeView {
		t.Helper()
		code, b := api("GET", base+"/cluster/nodes", "")
		var r struct {
			Data struct{ Nodes []nodeView } `json:"data"`
		}
		if code != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("GET /cluster/nodes: %d %s", code, b)
		}
		return r.Data.Nodes
	}

	// The control: a node without peer authentication takes these frames.
	t.Run("control: --insecure-peer accepts them", func(t *testing.T) {
		base, peer := startKvnode(t, bin, key, "--insecure-peer")
		code, b := api("GET", base+"/cluster/status", "")
		if code != 200 || !strings.Contains(string(b), `"insecurePeer":true`) || !strings.Contains(string(b), `"peerWarning":"the peer port runs WITHOUT authentication`) {
			t.Fatalf("status of an --insecure-peer node: %d %s", code, b)
		}
		c := transport.NewClient(transport.ClientConfig{})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Call(ctx, peer, methodWrite, writeFrame("pwned", []byte(`"by a stranger"`))); err != nil {
			t.Fatalf("plaintext write: %v", err)
		}
		if _, err := c.Call(ctx, peer, methodJoin, joinFrame(false, "evil", "127.0.0.1:1", "")); err != nil {
			t.Fatalf("plaintext join: %v", err)
		}
		if code, b := api("GET", base+"/kv/items/pwned", ""); code != 200 {
			t.Fatalf("the control write did not land: %d %s", code, b)
		}
		found := false
		for _, n := range nodes(base) {
			found = found || n.ID == "evil"
		}
		if !found {
			t.Fatal("the control join did not add evil")
		}
	})

	base := "http://127.0.0.1:24081"
	code, b := api("PUT", base+"/kv/items/victim", `{"value":"original"}`)
	if code != 201 {
		t.Fatalf("PUT victim: %d %s", code, b)
	}
	code, b = api("GET", base+"/cluster/status", "")
	var st struct {
		Data struct {
			LeaderAddr   string `json:"leaderAddr"`
			InsecurePeer bool   `json:"insecurePeer"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Data.LeaderAddr == "" || st.Data.InsecurePeer {
		t.Fatalf("status: %d %s", code, b)
	}
	leaderPeer := st.Data.LeaderAddr
	before := nodes(base)

	// 1. Plaintext frames, through our own RPC client and as raw bytes.
	plain := transport.NewClient(transport.ClientConfig{DialTimeout: 2 * time.Second})
	defer plain.Close()
	for name, f := range map[string]struct {
		method  uint8
		payload []byte
	}{
		"write":  {methodWrite, writeFrame("pwned", []byte(`"by a stranger"`))},
		"join":   {methodJoin, joinFrame(false, "evil", "127.0.0.1:1", "")},
		"remove": {methodRemove, removeFrame("n3")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := plain.Call(ctx, leaderPeer, f.method, f.payload)
		cancel()
		if err == nil {
			t.Errorf("plaintext %s frame answered: %q", name, resp)
		}
		expectNoAnswer(t, "plaintext "+name, nil, leaderPeer, rawFrame(f.method, f.payload))
	}

	// 2. Certificates from the cluster's own CA that are not members of it.
	ca, err := pki.LoadCA(filepath.Join(dir, "certs", "ca.pem"), filepath.Join(dir, "certs", "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	otherCluster, err := ca.IssueNode(pki.Identity{Cluster: "staging", Node: "n1"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	workload, err := ca.Issue("web-frontend", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, nc := range map[string]pki.NodeCert{"another cluster's n1": otherCluster, "another workload": workload} {
		cert, err := nc.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}
		for _, f := range [][]byte{rawFrame(methodWrite, writeFrame("pwned", []byte(`1`))), rawFrame(methodJoin, joinFrame(false, "evil", "127.0.0.1:1", ""))} {
			expectNoAnswer(t, name, cfg, leaderPeer, f)
		}
	}

	// 3. A real member's certificate (n3's) claiming other ids. The attacker
	// serves n3's certificate at an address of its own, so the leader's
	// check of "who is at that address" meets n3, not the claimed id.
	n3, err := transport.LoadPeerTLS(filepath.Join(dir, "certs", "ca.pem"), filepath.Join(dir, "certs", "n3.pem"),
		filepath.Join(dir, "certs", "n3-key.pem"), pki.Identity{Cluster: pki.DefaultClusterName, Node: "n3"})
	if err != nil {
		t.Fatal(err)
	}
	lair, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", TLS: n3})
	if err != nil {
		t.Fatal(err)
	}
	defer lair.Close()
	member := transport.NewClient(transport.ClientConfig{TLS: n3})
	defer member.Close()
	for name, tc := range map[string]struct {
		payload []byte
		want    string
	}{
		"join as n1 at the attacker's address": {joinFrame(false, "n1", lair.Addr(), "http://evil.example"), "did not prove"},
		"join as a new node n9":                {joinFrame(false, "n9", lair.Addr(), ""), "did not prove"},
		"register n1's HTTP address":           {joinFrame(true, "n1", before[0].PeerAddr, "http://evil.example"), "only its own address"},
		"move n2 to the attacker's address":    {joinFrame(false, "n2", lair.Addr(), ""), "did not prove"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := member.Call(ctx, leaderPeer, methodJoin, tc.payload)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(resp), tc.want) {
			t.Errorf("%s: answer %q, want a refusal saying %q", name, resp, tc.want)
		}
	}

	// Nothing changed: same members and HTTP addresses on every node, the
	// victim intact, no pwned key.
	for _, port := range []string{"24081", "24082", "24083"} {
		if after := nodes("http://127.0.0.1:" + port); !sameMembers(before, after) {
			t.Errorf("members seen by :%s changed:\nbefore %+v\nafter  %+v", port, before, after)
		}
		if code, b := api("GET", "http://127.0.0.1:"+port+"/kv/items/pwned", ""); code != 404 {
			t.Errorf("pwned on :%s: %d %s", port, code, b)
		}
		if code, b := api("GET", "http://127.0.0.1:"+port+"/kv/items/victim", ""); code != 200 || !strings.Contains(string(b), `"value":"original"`) {
			t.Errorf("victim on :%s: %d %s", port, code, b)
		}
	}
	logs, err := os.ReadFile(filepath.Join(dir, "n"+strings.TrimPrefix(leaderPeer, "127.0.0.1:2418"), "kvnode.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rejected peer connection: TLS handshake failed", "identity refused", "refused join"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("leader log lacks %q", want)
		}
	}
}

func sameMembers(a, b []nodeView) bool {
	index := func(ns []nodeView) map[string]nodeView {
		m := map[string]nodeView{}
		for _, n := range ns {
			m[n.ID] = n
		}
		return m
	}
	return reflect.DeepEqual(index(a), index(b))
}

// expectNoAnswer sends frame to addr (over TLS with cfg, else plain TCP) and
// requires the node to close the connection without answering a frame.
func expectNoAnswer(t *testing.T, what string, cfg *tls.Config, addr string, frame []byte) {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return // refused during the handshake
		}
	} else if conn, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Fatalf("%s: dial: %v", what, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	conn.Write(frame)
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection stayed open", what)
	}
	// A TLS server answers garbage with at most an alert record; a frame
	// answer would start with a 4-byte length of at least 17.
	if cfg != nil && len(got) > 0 {
		t.Fatalf("%s: got %d bytes back", what, len(got))
	}
	if cfg == nil && len(got) >= 4 && binary.BigEndian.Uint32(got) >= 17 && got[0] != 0x15 {
		t.Fatalf("%s: got an answer %q", what, got)
	}
}

// TestKvnodeRefusesPlaintextPeerPort: without peer certificates and without
// --insecure-peer, kvnode exits at once and says what to do.
func TestKvnodeRefusesPlaintextPeerPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvnode")
	goBuild(t, repoRoot(t), bin, "./cmd/kvnode")
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0")
	cmd.Env = []string{"KV_API_KEY=k"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("kvnode without peer TLS: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"the peer port needs mutual TLS", "--peer-ca, --peer-cert and --peer-key", "kvnode certs", "--insecure-peer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
	// KV_INSECURE_PEER is the flag's environment form.
	cmd = exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0",
		"--peer-ca", "/nonexistent")
	cmd.Env = []string{"KV_API_KEY=k", "KV_INSECURE_PEER=true"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--insecure-peer cannot be combined") {
		t.Fatalf("KV_INSECURE_PEER with --peer-ca: %v\n%s", err, out)
	}
}
