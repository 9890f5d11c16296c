package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer returns the raft.StreamLayer of this peer port, for
// raft.NewNetworkTransportWithConfig. Every call returns the same layer.
//
//   - Accept returns accepted connections whose ProtoRaft byte has been
//     consumed. After the layer or the Mux is closed it returns an error
//     wrapping ErrClosed and net.ErrClosed.
//   - Dial connects to a peer and writes ProtoRaft before returning.
//   - Addr returns the advertised address, which raft uses as the local one.
//   - Close only stops Accept (raft's NetworkTransport calls it on shutdown);
//     the RPC protocol keeps running until Mux.Close. It cannot be reopened.
//
// Mux.Close also closes every connection the layer accepted or dialed, so
// raft's per-connection goroutines end even for connections raft itself
// never closes.
func (m *Mux) RaftLayer() raft.StreamLayer { return m.raft }

type raftLayer struct {
	m        *Mux
	accepted chan net.Conn // unbuffered: a handoff completes only inside Accept

	closeOnce sync.Once
	done      chan struct{}
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func newRaftLayer(m *Mux) *raftLayer {
	return &raftLayer{m: m, accepted: make(chan net.Conn), done: make(chan struct{})}
}

// handoff waits for raft to Accept conn. It gives up after HandshakeTimeout
// so connections cannot pile up while raft is not accepting (not started yet,
// or stuck); the dialing peer then sees a closed connection and retries.
func (l *raftLayer) handoff(conn *trackedConn) {
	t := time.NewTimer(l.m.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case l.accepted <- conn:
		return
	case <-t.C:
		l.m.log.Warn("raft did not accept connection in time, closing it", "remote", conn.RemoteAddr().String())
	case <-l.done:
	case <-l.m.ctx.Done():
	}
	conn.Close()
}

func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.done:
	case <-l.m.ctx.Done():
	}
	return nil, fmt.Errorf("%w: raft layer: %w", ErrClosed, net.ErrClosed)
}

func (l *raftLayer) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *raftLayer) Addr() net.Addr { return advertisedAddr(l.m.addr) }

func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.m.isClosed() {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrClosed, address, net.ErrClosed)
	}
	ctx := l.m.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	if l.m.cfg.TLS != nil {
		if conn, err = l.m.cfg.TLS.clientHandshake(ctx, conn, string(address)); err != nil {
			return nil, err
		}
	}
	if timeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := conn.Write([]byte{ProtoRaft}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transport: write protocol byte to %s: %w", address, err)
	}
	conn.SetWriteDeadline(time.Time{})
	if !l.m.track(conn, false) {
		conn.Close()
		return nil, fmt.Errorf("%w: dial %s: %w", ErrClosed, address, net.ErrClosed)
	}
	return &trackedConn{Conn: conn, m: l.m}, nil
}

// trackedConn is a raft connection the Mux closes on Close; closing it
// removes it from the Mux's set.
type trackedConn struct {
	net.Conn
	m    *Mux
	once sync.Once
	err  error
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.untrack(c.Conn)
		c.err = c.Conn.Close()
	})
	return c.err
}

// advertisedAddr is a net.Addr for an address that may be a host name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
