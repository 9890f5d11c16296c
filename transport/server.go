package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// serveRPC serves the RPC protocol on conn until it fails, idles out or the
// Mux closes. It returns only after every handler it started has returned.
//
// Limits (Config): at most MaxInFlightPerConn requests of this connection and
// MaxInFlight of the whole Mux run at once; at either cap the reader stops
// reading, so a pipelining peer is slowed by TCP flow control instead of
// growing goroutines without bound. Every read of the connection carries an
// IdleTimeout deadline: when it passes with no request in flight and no
// partial frame, the connection is idle and closed (the client redials); with
// requests in flight it is simply renewed; inside a frame it means the peer
// stalled and the connection is closed.
func (m *Mux) serveRPC(conn net.Conn) {
	// Handlers learn the authenticated caller through PeerID(ctx).
	ctx, cancel := context.WithCancel(m.withPeer(m.ctx, conn))
	var handlers sync.WaitGroup
	defer func() {
		cancel()
		conn.Close()
		handlers.Wait()
	}()

	remote := conn.RemoteAddr().String()
	br := bufio.NewReaderSize(idleConn{Conn: conn, idle: m.cfg.IdleTimeout}, bufferBytes)
	w := newFrameWriter(conn, m.cfg.WriteTimeout)
	slots := make(chan struct{}, m.cfg.MaxInFlightPerConn)
	release := func() {
		<-m.inflight
		<-slots
	}
	// Handlers run on worker goroutines that outlive one request: a fresh
	// goroutine per request had to grow its stack to what raft.Apply and the
	// codec need every time (runtime.newstack was 6.5 % of a leader's CPU
	// under forwarded writes). jobs is unbuffered, so a send succeeds only
	// when a worker is idle; otherwise a new worker starts. A worker exits
	// after workerIdle without work or when the connection ends.
	jobs := make(chan rpcJob)
	worker := func(j rpcJob) {
		defer handlers.Done()
		idle := time.NewTimer(workerIdle)
		defer idle.Stop()
		for {
			resp, err := m.runHandler(ctx, j.handler, j.h, j.req)
			m.respond(w, remote, j.h.id, resp, err)
			release()
			idle.Reset(workerIdle)
			select {
			case j = <-jobs:
			case <-idle.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	for {
		h, n, err := readHeader(br, m.cfg.MaxFrameBytes)
		if err != nil {
			timeout := errors.Is(err, os.ErrDeadlineExceeded)
			switch {
			case timeout && br.Buffered() == 0 && len(slots) > 0:
				continue // quiet while its requests run: not idle
			case timeout && br.Buffered() == 0:
				m.log.Debug("closing idle rpc connection", "remote", remote, "idle", m.cfg.IdleTimeout)
			case timeout:
				m.log.Warn("closing rpc connection: peer stalled inside a frame header", "remote", remote)
			case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, errBadFrame):
				m.log.Warn("closing rpc connection: bad frame", "remote", remote, "error", err)
			case errors.Is(err, io.EOF) || m.isClosed():
			default:
				m.log.Debug("rpc connection read failed", "remote", remote, "error", err)
			}
			return
		}
		m.framesReading.Add(1)
		req, err := readPayload(br, n)
		m.framesReading.Add(-1)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				m.log.Warn("closing rpc connection: peer stalled inside a frame", "remote", remote, "declared", n)
			} else if !m.isClosed() {
				m.log.Debug("rpc connection read failed inside a frame", "remote", remote, "error", err)
			}
			return
		}
		hp := m.handler.Load()
		if hp == nil {
			m.respond(w, remote, h.id, nil, &RemoteError{Message: MsgNotReady})
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case m.inflight <- struct{}{}:
		case <-ctx.Done():
			<-slots
			return
		}
		job := rpcJob{handler: *hp, h: h, req: req}
		select {
		case jobs <- job: // an idle worker took it
		default:
			handlers.Add(1)
			go worker(job)
		}
	}
}

// idleConn renews the connection's read deadline before every read, so the
// deadline measures silence, not the length of a frame.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// workerIdle is how long a connection's idle handler goroutine waits for the
// next request before it exits.
const workerIdle = 10 * time.Second

// rpcJob is one request handed to a handler goroutine.
type rpcJob struct {
	handler Handler
	h       frameHeader
	req     []byte
}

func (m *Mux) runHandler(connCtx context.Context, handler Handler, h frameHeader, req []byte) (resp []byte, err error) {
	ctx := connCtx
	if h.timeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(connCtx, time.Duration(h.timeout))
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			m.log.Error("rpc handler panicked", "method", h.kind, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return handler(ctx, h.kind, req)
}

// respond writes the response frame for request id. A response that would
// exceed MaxFrameBytes is replaced by an error response.
func (m *Mux) respond(w *frameWriter, remote string, id uint64, resp []byte, herr error) {
	status := statusOK
	if herr != nil {
		status = statusError
		if re, ok := herr.(*RemoteError); ok {
			resp = []byte(re.Message) // relayed as is, without another prefix
		} else {
			resp = []byte(herr.Error())
		}
	}
	if limit := m.cfg.MaxFrameBytes - headerLen; len(resp) > limit {
		if status == statusOK {
			m.log.Warn("rpc response exceeds frame limit", "remote", remote, "bytes", len(resp), "limit", limit)
			resp = []byte(fmt.Sprintf("response of %d bytes exceeds the frame limit", len(resp)))
			status = statusError
		}
		resp = resp[:min(len(resp), limit)]
	}
	if err := w.write(frameHeader{id: id, kind: status}, resp); err != nil && err != errNotWritten && !m.isClosed() {
		m.log.Debug("rpc response write failed", "remote", remote, "error", err)
	}
}
