package transport

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func newNetworkTransport(t *testing.T, m *Mux) *raft.NetworkTransport {
	t.Helper()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  m.RaftLayer(),
		MaxPool: 2,
		Timeout: 2 * time.Second,
	})
	t.Cleanup(func() { trans.Close() })
	return trans
}

// serveAppendEntries answers every AppendEntries on trans with resp until the
// test ends.
func serveAppendEntries(t *testing.T, trans *raft.NetworkTransport, want *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		<-stopped
	})
	go func() {
		defer close(stopped)
		for {
			select {
			case rpc := <-trans.Consumer():
				req, ok := rpc.Command.(*raft.AppendEntriesRequest)
				if !ok || !reflect.DeepEqual(req, want) {
					t.Errorf("unexpected command %#v", rpc.Command)
					rpc.Respond(nil, errors.New("unexpected command"))
					continue
				}
				rpc.Respond(resp, nil)
			case <-done:
				return
			}
		}
	}()
}

func TestRaftLayerWithNetworkTransport(t *testing.T) {
	checkNoLeaks(t)
	m1 := newMux(t, Config{})
	m2 := newMux(t, Config{})
	t1 := newNetworkTransport(t, m1)
	t2 := newNetworkTransport(t, m2)

	if got := string(t1.LocalAddr()); got != m1.Addr() {
		t.Fatalf("raft local address %q, want advertised %q", got, m1.Addr())
	}

	args := raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n2"), Addr: []byte(m2.Addr())},
		Term:              10,
		PrevLogEntry:      100,
		PrevLogTerm:       4,
		Entries:           []*raft.Log{{Index: 101, Term: 4, Type: raft.LogCommand, Data: []byte("hello")}},
		LeaderCommitIndex: 90,
	}
	want := raft.AppendEntriesResponse{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax},
		Term:      10,
		LastLog:   101,
		Success:   true,
	}
	serveAppendEntries(t, t1, &args, &want)

	// Several round trips: the first dials, later ones reuse raft's pooled conn.
	for i := 0; i < 3; i++ {
		var out raft.AppendEntriesResponse
		if err := t2.AppendEntries("n1", t1.LocalAddr(), &args, &out); err != nil {
			t.Fatalf("AppendEntries: %v", err)
		}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("response %#v, want %#v", out, want)
		}
	}

	// The RPC protocol shares the port.
	m1.SetRPCHandler(echoHandler)
	c := newClient(t, ClientConfig{})
	if resp, err := c.Call(ctxTimeout(t, 5*time.Second), m1.Addr(), 9, []byte("x")); err != nil || string(resp) != "\x09x" {
		t.Fatalf("Call on shared port = %q, %v", resp, err)
	}
}

func TestRaftLayerAddrIsAdvertised(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{AdvertiseAddr: "node-a.example:7000"})
	if m.Addr() != "node-a.example:7000" {
		t.Fatalf("Addr() = %q", m.Addr())
	}
	a := m.RaftLayer().Addr()
	if a.String() != "node-a.example:7000" || a.Network() != "tcp" {
		t.Fatalf("RaftLayer().Addr() = %s/%s", a.Network(), a)
	}
}

func TestRaftLayerCloseUnblocksAccept(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	m.SetRPCHandler(echoHandler)
	layer := m.RaftLayer()

	errc := make(chan error, 1)
	go func() {
		_, err := layer.Accept()
		errc <- err
	}()
	layer.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}

	// Raft connections are refused now; RPC keeps working until Mux.Close.
	conn := dialRaw(t, m.Addr())
	conn.Write([]byte{ProtoRaft})
	expectClosedByPeer(t, conn, 5*time.Second)
	c := newClient(t, ClientConfig{})
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), m.Addr(), 1, nil); err != nil {
		t.Fatalf("Call after raft layer Close: %v", err)
	}
}

func TestRaftLayerAcceptFailsAfterMuxClose(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := m.RaftLayer().Accept()
		errc <- err
	}()
	m.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Accept after Mux.Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Mux.Close")
	}
	if _, err := m.RaftLayer().Dial(raft.ServerAddress(m.Addr()), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Mux.Close: %v", err)
	}
}

func TestRaftLayerDialAndAccept(t *testing.T) {
	checkNoLeaks(t)
	m1 := newMux(t, Config{})
	m2 := newMux(t, Config{})

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := m1.RaftLayer().Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	out, err := m2.RaftLayer().Dial(raft.ServerAddress(m1.Addr()), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer out.Close()
	in := <-accepted
	if in == nil {
		t.FailNow()
	}
	defer in.Close()

	// The protocol byte was consumed: raft sees exactly what was written.
	if _, err := out.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestRaftConnNotAcceptedIsClosed(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{HandshakeTimeout: 100 * time.Millisecond})
	// Nobody calls Accept: the connection must not wait forever.
	conn := dialRaw(t, m.Addr())
	conn.Write([]byte{ProtoRaft})
	expectClosedByPeer(t, conn, 5*time.Second)
}

func TestMuxCloseClosesRaftConns(t *testing.T) {
	checkNoLeaks(t)
	m1 := newMux(t, Config{})
	m2 := newMux(t, Config{})
	go func() {
		// Accept once and hold the conn like raft would, never closing it.
		m1.RaftLayer().Accept()
	}()
	out, err := m2.RaftLayer().Dial(raft.ServerAddress(m1.Addr()), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	m1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		out.SetReadDeadline(time.Now().Add(5 * time.Second))
		out.Read(make([]byte, 1))
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("raft conn still open after Mux.Close")
	}
	m2.Close()
	if _, err := out.Write([]byte("x")); err == nil {
		t.Fatal("dialed raft conn still writable after its Mux closed")
	}
}
