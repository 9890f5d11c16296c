package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Client calls the RPC protocol of peers. It keeps ConnsPerPeer persistent
// connections per address and pipelines any number of requests on each,
// matching responses to callers by request id. It is safe for concurrent use.
//
// Goroutines: one reader per connection and one per dial in progress; Call
// itself starts none. Close stops and waits for all of them.
type Client struct {
	cfg    ClientConfig
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; aborts dials in progress
	cancel context.CancelFunc
	peers  sync.Map // address -> *peer
	closed atomic.Bool

	mu    sync.Mutex
	conns map[*clientConn]struct{} // live connections, for Close
	wg    sync.WaitGroup
}

// NewClient returns a Client. Zero or negative configuration fields take
// their defaults; use ClientConfig.Validate to reject them instead.
func NewClient(cfg ClientConfig) *Client {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:    cfg,
		log:    cfg.Logger,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*clientConn]struct{}),
	}
}

// Call sends one request to the RPC protocol at addr and waits for its
// response or for ctx to end. ctx's deadline travels with the request and
// bounds the remote handler's context.
//
// The error tells what may have happened remotely (see ErrNotSent,
// ErrConnLost, ErrNoResponse and RemoteError). A connection found dead before
// the request was written to it is replaced transparently.
func (c *Client) Call(ctx context.Context, addr string, method uint8, req []byte) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	if n := headerLen + len(req); n > c.cfg.MaxFrameBytes {
		return nil, fmt.Errorf("%w: %w: request frame of %d bytes, limit %d", ErrNotSent, ErrFrameTooLarge, n, c.cfg.MaxFrameBytes)
	}
	p := c.peer(addr)
	const attempts = 3
	for i := 1; ; i++ {
		cc, err := c.conn(ctx, p, addr)
		if err != nil {
			return nil, err
		}
		resp, err := cc.call(ctx, method, req)
		if err == errNotWritten && i < attempts {
			continue
		}
		return resp, err
	}
}

// Close closes every connection and waits for the client's goroutines.
// Calls waiting for a response fail with ErrConnLost; later calls fail with
// ErrNotSent and ErrClosed. It is safe to call more than once.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	conns := make([]*clientConn, 0, len(c.conns))
	for cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	c.cancel()
	for _, cc := range conns {
		cc.conn.Close()
	}
	c.wg.Wait()
	return nil
}

// peer is the connection pool of one address.
type peer struct {
	next  atomic.Uint32
	slots []connSlot
}

// connSlot holds one pooled connection, or the dial that will produce it.
type connSlot struct {
	mu   sync.Mutex
	conn *clientConn
	dial *dialAttempt
}

type dialAttempt struct {
	done chan struct{} // closed when conn or err is set
	conn *clientConn
	err  error
}

func (c *Client) peer(addr string) *peer {
	if p, ok := c.peers.Load(addr); ok {
		return p.(*peer)
	}
	p, _ := c.peers.LoadOrStore(addr, &peer{slots: make([]connSlot, c.cfg.ConnsPerPeer)})
	return p.(*peer)
}

// conn returns a live connection to addr. It starts from the next slot in
// round-robin order and takes the first live connection it finds; every dead
// slot it passes gets a dial started in the background, so a failed
// connection is replaced while its siblings carry the traffic. Only when no
// slot is live does the caller wait, for the first slot's dial or for ctx.
func (c *Client) conn(ctx context.Context, p *peer, addr string) (*clientConn, error) {
	n := uint32(len(p.slots))
	first := p.next.Add(1)
	var wait *dialAttempt
	for i := uint32(0); i < n; i++ {
		s := &p.slots[(first+i)%n]
		s.mu.Lock()
		if cc := s.conn; cc != nil && !cc.failed.Load() && !cc.retireIfIdle(c.cfg.IdleTimeout) {
			s.mu.Unlock()
			return cc, nil
		}
		if s.dial == nil {
			d := &dialAttempt{done: make(chan struct{})}
			if !c.goDial(s, d, addr) {
				s.mu.Unlock()
				return nil, fmt.Errorf("%w: %w", ErrNotSent, ErrClosed)
			}
			s.dial = d
		}
		if wait == nil {
			wait = s.dial
		}
		s.mu.Unlock()
	}

	select {
	case <-wait.done:
		if wait.err != nil {
			return nil, wait.err
		}
		return wait.conn, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for connection to %s: %w", ErrNotSent, addr, ctx.Err())
	}
}

// goDial starts the dial of slot s in its own goroutine, so that the caller
// that happened to trigger it can still give up on its own context. It
// returns false once the client is closed.
func (c *Client) goDial(s *connSlot, d *dialAttempt, addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cc, err := c.dial(addr)
		s.mu.Lock()
		s.dial = nil
		if err == nil {
			s.conn = cc
		}
		s.mu.Unlock()
		d.conn, d.err = cc, err
		close(d.done)
	}()
	return true
}

func (c *Client) dial(addr string) (*clientConn, error) {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	conn, err := d.DialContext(c.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrNotSent, addr, err)
	}
	if c.cfg.TLS != nil {
		hctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
		conn, err = c.cfg.TLS.clientHandshake(hctx, conn, addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
	}
	cc := &clientConn{
		c:       c,
		addr:    addr,
		conn:    conn,
		w:       newFrameWriter(conn, c.cfg.WriteTimeout),
		pending: make(map[uint64]*call),
	}
	cc.lastUsed.Store(time.Now().UnixNano())
	// The protocol byte goes out with the first request, in the same write.
	cc.w.buf = append(cc.w.buf, ProtoRPC)

	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrNotSent, ErrClosed)
	}
	c.conns[cc] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	go cc.readLoop()
	return cc, nil
}

// clientConn is one pipelined connection. Its reader goroutine owns the read
// side; writers share the frameWriter.
type clientConn struct {
	c      *Client
	addr   string
	conn   net.Conn
	w      *frameWriter
	failed atomic.Bool // set once the reader has given up; the slot redials
	// lastUsed is when a call was last queued or answered (UnixNano).
	lastUsed atomic.Int64

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call // nil once failed
}

// call is one request waiting for its response. done receives exactly one
// result: from the reader (response or connection failure), and only if the
// reader removed the call from pending.
type call struct {
	done chan result
}

type result struct {
	resp []byte
	err  error
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan result, 1)} }}

func (cc *clientConn) call(ctx context.Context, method uint8, req []byte) ([]byte, error) {
	h := frameHeader{kind: method}
	if dl, ok := ctx.Deadline(); ok {
		rem := time.Until(dl)
		if rem <= 0 {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, context.DeadlineExceeded)
		}
		h.timeout = int64(rem)
	}

	cl := callPool.Get().(*call)
	cc.mu.Lock()
	if cc.pending == nil {
		cc.mu.Unlock()
		callPool.Put(cl)
		return nil, errNotWritten
	}
	cc.nextID++
	h.id = cc.nextID
	cc.pending[h.id] = cl
	cc.lastUsed.Store(time.Now().UnixNano())
	cc.mu.Unlock()

	if err := cc.w.write(h, req); err == errNotWritten {
		if cc.forget(h.id) {
			callPool.Put(cl)
			return nil, errNotWritten
		}
		// The reader failed the call first; it was never written, so still
		// report it as not sent.
		<-cl.done
		callPool.Put(cl)
		return nil, errNotWritten
	}
	// Any other write error closed the connection; the reader fails the call.

	select {
	case r := <-cl.done:
		callPool.Put(cl)
		return r.resp, r.err
	case <-ctx.Done():
		if cc.forget(h.id) {
			callPool.Put(cl)
			return nil, fmt.Errorf("%w: %w", ErrNoResponse, ctx.Err())
		}
		// The reader claimed the call just now; its result is on the way.
		r := <-cl.done
		callPool.Put(cl)
		return r.resp, r.err
	}
}

// retireIfIdle closes the connection if no call is pending and none was
// queued or answered for idle, and reports whether it did. From then on no
// call can be queued on it (they get errNotWritten and move on), so a
// request is never written to a connection the server may be closing for
// idleness: Config.IdleTimeout on the server is longer.
func (cc *clientConn) retireIfIdle(idle time.Duration) bool {
	cc.mu.Lock()
	if cc.pending == nil || len(cc.pending) > 0 || time.Since(time.Unix(0, cc.lastUsed.Load())) < idle {
		cc.mu.Unlock()
		return false
	}
	cc.pending = nil
	cc.mu.Unlock()
	cc.failed.Store(true)
	cc.conn.Close()
	cc.c.log.Debug("closed idle rpc connection", "addr", cc.addr, "idle", idle)
	return true
}

// forget removes a pending call; false means the reader already claimed it.
func (cc *clientConn) forget(id uint64) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.pending[id]; !ok {
		return false
	}
	delete(cc.pending, id)
	return true
}

func (cc *clientConn) readLoop() {
	defer cc.c.wg.Done()
	br := bufio.NewReaderSize(cc.conn, bufferBytes)
	var err error
	for {
		var h frameHeader
		var payload []byte
		h, payload, err = readFrame(br, cc.c.cfg.MaxFrameBytes)
		if err != nil {
			break
		}
		var r result
		switch h.kind {
		case statusOK:
			r.resp = payload
		case statusError:
			r.err = &RemoteError{Message: string(payload)}
		default:
			err = fmt.Errorf("%w: unknown response status %d", errBadFrame, h.kind)
		}
		if err != nil {
			break
		}
		cc.mu.Lock()
		cl := cc.pending[h.id]
		delete(cc.pending, h.id)
		cc.lastUsed.Store(time.Now().UnixNano())
		cc.mu.Unlock()
		if cl != nil {
			cl.done <- r
		}
	}
	cc.fail(err)
}

// fail closes the connection and fails every pending call with ErrConnLost.
func (cc *clientConn) fail(cause error) {
	cc.failed.Store(true)
	cc.conn.Close()
	cc.w.poison(cause)
	c := cc.c
	switch {
	case errors.Is(cause, ErrFrameTooLarge) || errors.Is(cause, errBadFrame):
		c.log.Warn("closing rpc connection: bad frame from peer", "addr", cc.addr, "error", cause)
	case errors.Is(cause, io.EOF) || c.closed.Load():
		c.log.Debug("rpc connection closed", "addr", cc.addr)
	default:
		c.log.Debug("rpc connection failed", "addr", cc.addr, "error", cause)
	}

	cc.mu.Lock()
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	if len(pending) > 0 {
		err := fmt.Errorf("%w: %s: %v", ErrConnLost, cc.addr, cause)
		for _, cl := range pending {
			cl.done <- result{err: err}
		}
	}

	c.mu.Lock()
	delete(c.conns, cc)
	c.mu.Unlock()
}
