package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Protocol bytes: the first byte a dialer writes on a new peer connection.
const (
	ProtoRaft byte = 0x01
	ProtoRPC  byte = 0x02
)

// Handler serves one RPC. It runs on its own goroutine, concurrently with
// other requests from the same connection. ctx carries the caller's remaining
// deadline (propagated in the frame) and is cancelled if the connection
// closes or the Mux is closed; Mux.Close waits for handlers to return, so a
// handler must honour ctx. req is owned by the handler. A non-nil error is
// sent to the caller as a RemoteError carrying only err.Error(); otherwise
// the returned bytes are the response and must not be modified afterwards.
type Handler func(ctx context.Context, method uint8, req []byte) ([]byte, error)

// Mux owns a node's peer port. It accepts TCP connections, reads each one's
// protocol byte, and hands raft connections to RaftLayer().Accept and RPC
// connections to the handler set by SetRPCHandler.
//
// Goroutines: one accept loop; one per accepted connection (handshake, then
// serving RPC or waiting for raft to accept it); one per in-flight RPC
// request. Close stops and waits for all of them.
type Mux struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	addr    string
	raft    *raftLayer
	handler atomic.Pointer[Handler]

	ctx    context.Context // cancelled by Close; parent of every handler context
	cancel context.CancelFunc

	// inflight holds one token per RPC request running on any connection
	// (Config.MaxInFlight).
	inflight chan struct{}
	// framesReading counts RPC frames whose header has been read and whose
	// payload has not fully arrived (tests wait on it).
	framesReading atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // every open connection, accepted or raft-dialed
	// accepted counts open accepted connections, in total and per remote IP
	// (Config.MaxConns, MaxConnsPerPeer); refusedLog rate-limits the warning.
	accepted   int
	perIP      map[string]int
	refused    int
	refusedLog time.Time
	wg         sync.WaitGroup
}

// Listen binds cfg.BindAddr and starts accepting peer connections.
func Listen(cfg Config) (*Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = ln.Addr().String()
		if err := checkAdvertisable(addr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("transport: set AdvertiseAddr: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:    cfg,
		log:    cfg.Logger,
		ln:     ln,
		addr:   addr,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),

		inflight: make(chan struct{}, cfg.MaxInFlight),
		perIP:    make(map[string]int),
	}
	m.raft = newRaftLayer(m)
	m.wg.Add(1)
	go m.acceptLoop()
	if cfg.TLS == nil {
		m.log.Warn("peer port is NOT authenticated: anyone who can reach it can join raft and append to the log; configure peer mutual TLS", "bind", ln.Addr().String())
	}
	if cfg.TLS != nil {
		m.log.Info("peer port listening", "bind", ln.Addr().String(), "advertise", addr, "mtls", true, "identity", cfg.TLS.Self.String())
	} else {
		m.log.Info("peer port listening", "bind", ln.Addr().String(), "advertise", addr, "mtls", false)
	}
	return m, nil
}

// Addr returns the advertised address: the one peers dial and raft records.
func (m *Mux) Addr() string { return m.addr }

// SetRPCHandler installs the handler for RPC requests. It may be called at
// any time, including after Listen and while requests are arriving; until it
// is called, every request is answered with RemoteError{MsgNotReady}.
func (m *Mux) SetRPCHandler(h Handler) {
	if h == nil {
		m.handler.Store(nil)
		return
	}
	m.handler.Store(&h)
}

// Close stops accepting, closes the listener and every connection the Mux
// accepted or dialed for raft (cancelling in-flight handler contexts), and
// waits for every goroutine it started, including running handlers. It is
// safe to call more than once.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	conns := make([]net.Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()

	// Connections close before handler contexts are cancelled, so a handler
	// that returns because of the cancellation cannot answer: its caller sees
	// ErrConnLost, which is the truth (it may have done its work).
	err := m.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	m.cancel()
	m.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// track registers an open connection so Close can close it, and when
// withGoroutine is set, accounts for the goroutine about to serve it. It
// returns false (and the caller must close conn) once the Mux is closed.
func (m *Mux) track(conn net.Conn, withGoroutine bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[conn] = struct{}{}
	if withGoroutine {
		m.wg.Add(1)
	}
	return true
}

func (m *Mux) untrack(conn net.Conn) {
	m.mu.Lock()
	delete(m.conns, conn)
	m.mu.Unlock()
}

func (m *Mux) isClosed() bool {
	return m.ctx.Err() != nil
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	const minDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Resource exhaustion (EMFILE and the like): back off and retry.
			delay = min(max(2*delay, minDelay), maxDelay)
			m.log.Warn("accept failed", "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-m.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		if conn = m.admit(conn); conn == nil {
			continue
		}
		if m.cfg.TLS != nil {
			conn = tls.Server(conn, m.cfg.TLS.Server)
		}
		if !m.track(conn, true) {
			conn.Close()
			return
		}
		go m.handshake(conn)
	}
}

// admit counts an accepted connection against MaxConns and MaxConnsPerPeer
// and returns it wrapped so that closing it gives its place back; over a cap
// it closes the connection, logs (at most every 10 s, with the count) and
// returns nil. Nothing has been read from the connection yet.
func (m *Mux) admit(conn net.Conn) net.Conn {
	ip := conn.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	m.mu.Lock()
	if m.accepted >= m.cfg.MaxConns || m.perIP[ip] >= m.cfg.MaxConnsPerPeer {
		m.refused++
		var n int
		if now := time.Now(); now.Sub(m.refusedLog) >= 10*time.Second {
			n, m.refused, m.refusedLog = m.refused, 0, now
		}
		total, fromIP := m.accepted, m.perIP[ip]
		m.mu.Unlock()
		conn.Close()
		if n > 0 {
			m.log.Warn("refusing peer connections: connection limit reached", "remote", ip, "open", total, "open_from_ip", fromIP,
				"max_conns", m.cfg.MaxConns, "max_conns_per_peer", m.cfg.MaxConnsPerPeer, "refused_since_last_log", n)
		}
		return nil
	}
	m.accepted++
	m.perIP[ip]++
	m.mu.Unlock()
	return &countedConn{Conn: conn, m: m, ip: ip}
}

// openAccepted is the number of accepted connections currently open.
func (m *Mux) openAccepted() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepted
}

// countedConn is an accepted connection holding a place under the
// connection caps until it is closed.
type countedConn struct {
	net.Conn
	m    *Mux
	ip   string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		c.m.accepted--
		if c.m.perIP[c.ip]--; c.m.perIP[c.ip] <= 0 {
			delete(c.m.perIP, c.ip)
		}
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// handshake reads the protocol byte under HandshakeTimeout and dispatches.
func (m *Mux) handshake(conn net.Conn) {
	defer m.wg.Done()
	remote := conn.RemoteAddr().String()
	if tc, ok := conn.(*tls.Conn); ok {
		conn.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
		if err := tc.HandshakeContext(m.ctx); err != nil {
			if !m.isClosed() {
				m.log.Warn("rejected peer connection: TLS handshake failed", "remote", remote, "error", err)
			}
			m.closeConn(conn)
			return
		}
		conn.SetDeadline(time.Time{})
	}
	var proto [1]byte
	conn.SetReadDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if _, err := io.ReadFull(conn, proto[:]); err != nil {
		if !m.isClosed() {
			m.log.Debug("connection closed before protocol byte", "remote", remote, "error", err)
		}
		m.closeConn(conn)
		return
	}
	conn.SetReadDeadline(time.Time{})

	switch proto[0] {
	case ProtoRaft:
		m.raft.handoff(&trackedConn{Conn: conn, m: m})
	case ProtoRPC:
		m.serveRPC(conn)
		m.closeConn(conn)
	default:
		m.log.Warn("unknown protocol byte, closing connection", "remote", remote, "byte", fmt.Sprintf("%#02x", proto[0]))
		m.closeConn(conn)
	}
}

func (m *Mux) closeConn(conn net.Conn) {
	m.untrack(conn)
	conn.Close()
}

// MaxFrameBytes is the RPC frame limit in force (Config.MaxFrameBytes or
// its default), so the node's client sends and accepts the same frames.
func (m *Mux) MaxFrameBytes() int { return m.cfg.MaxFrameBytes }

// PeerTLS returns the peer TLS configuration (nil for plain TCP), so the
// node's RPC client dials peers the same way raft does.
func (m *Mux) PeerTLS() *PeerTLS { return m.cfg.TLS }
