package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// Wire format of the RPC protocol (after the ProtoRPC byte), in both
// directions, all integers big-endian:
//
//	[u32 length][u64 id][u8 kind][i64 timeout ns][payload]
//
// length counts the bytes after itself (17 + len(payload)). A whole frame,
// length prefix included, is at most MaxFrameBytes. In a request kind is the
// method and timeout is the caller's remaining time (0 = no deadline); in a
// response kind is a status and timeout is 0.
const (
	headerLen   = 4 + 8 + 1 + 8
	prefixLen   = 4
	bufferBytes = 32 << 10
)

// Response statuses.
const (
	statusOK    uint8 = 0
	statusError uint8 = 1 // payload is the error message
)

var errBadFrame = errors.New("transport: malformed frame")

type frameHeader struct {
	id      uint64
	kind    uint8
	timeout int64
}

func appendFrameHeader(b []byte, h frameHeader, payloadLen int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(headerLen-prefixLen+payloadLen))
	b = binary.BigEndian.AppendUint64(b, h.id)
	b = append(b, h.kind)
	return binary.BigEndian.AppendUint64(b, uint64(h.timeout))
}

// readFrame reads one frame (readHeader, then readPayload). The payload is
// freshly allocated and owned by the caller. A clean end of stream between
// frames returns io.EOF; an oversized frame returns ErrFrameTooLarge and a
// nonsensical one errBadFrame, both before reading the payload.
func readFrame(br *bufio.Reader, maxFrame int) (frameHeader, []byte, error) {
	h, n, err := readHeader(br, maxFrame)
	if err != nil {
		return frameHeader{}, nil, err
	}
	payload, err := readPayload(br, n)
	if err != nil {
		return frameHeader{}, nil, err
	}
	return h, payload, nil
}

// readHeader reads and checks one frame header and returns the length of the
// payload that follows. Nothing is consumed unless the whole header is valid.
func readHeader(br *bufio.Reader, maxFrame int) (frameHeader, int, error) {
	b, err := br.Peek(headerLen)
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return frameHeader{}, 0, err
	}
	n := int64(binary.BigEndian.Uint32(b))
	if n < headerLen-prefixLen {
		return frameHeader{}, 0, fmt.Errorf("%w: length %d", errBadFrame, n)
	}
	if n+prefixLen > int64(maxFrame) {
		return frameHeader{}, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n+prefixLen, maxFrame)
	}
	h := frameHeader{
		id:      binary.BigEndian.Uint64(b[4:]),
		kind:    b[12],
		timeout: int64(binary.BigEndian.Uint64(b[13:])),
	}
	if _, err := br.Discard(headerLen); err != nil {
		return frameHeader{}, 0, err
	}
	return h, int(n + prefixLen - headerLen), nil
}

// payloadChunk is the most a payload read allocates ahead of the bytes that
// have arrived.
const payloadChunk = 64 << 10

// readPayload reads an n-byte payload. The declared length is only a claim
// by the peer: the buffer starts at payloadChunk at most and doubles as the
// bytes arrive, so a peer that declares a large frame and sends nothing costs
// one chunk, not the declared size, and memory held is never more than
// twice what was received. Errors wrap errMidFrame: the stream is no
// longer at a frame boundary.
func readPayload(br *bufio.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, payloadChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: %w", errMidFrame, err)
		}
	}
	return buf, nil
}

// errMidFrame marks a read that failed inside a frame's payload.
var errMidFrame = errors.New("transport: connection failed inside a frame")

// frameWriter serialises frames from many goroutines onto one connection
// without a goroutine of its own, coalescing writes: a writer appends its
// frame to a shared buffer under a short lock; if no write is in progress it
// becomes the flusher and writes the buffer, then whatever accumulated while it
// was in the syscall, until the buffer is empty. Writers arriving meanwhile
// return at once. Under load one syscall carries many frames, and the lock is
// never held across a syscall. The price: a flusher may write frames of
// later writers before returning to its own caller.
//
// Any write error is sticky and closes the connection, which makes the
// connection's reader fail everything still pending on it.
type frameWriter struct {
	conn     net.Conn
	timeout  time.Duration
	deadline time.Time // write deadline set on conn; only the flusher touches it

	mu       sync.Mutex
	buf      []byte // frames not yet handed to the connection
	spare    []byte // the other buffer, reused to avoid allocating per flush
	flushing bool
	err      error
}

// maxKeptBuffer caps the buffer kept for reuse after a flush, so one large
// frame does not pin its memory for the connection's lifetime.
const maxKeptBuffer = 1 << 20

func newFrameWriter(conn net.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{conn: conn, timeout: timeout, buf: make([]byte, 0, bufferBytes)}
}

// errNotWritten marks a write refused because the connection had already
// failed: none of the frame reached the connection.
var errNotWritten = fmt.Errorf("%w: connection already failed", ErrNotSent)

// write queues one frame and makes sure it gets written. It returns
// errNotWritten if the connection had failed before the frame was queued, in
// which case none of it was sent. Any other result means the frame was queued
// and may have reached the peer; if the connection then fails, the reader
// reports that.
func (w *frameWriter) write(h frameHeader, payload []byte) error {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return errNotWritten
	}
	w.buf = appendFrameHeader(w.buf, h, len(payload))
	w.buf = append(w.buf, payload...)
	if w.flushing {
		w.mu.Unlock()
		return nil
	}
	w.flushing = true
	// Let goroutines that are already runnable (other callers, other
	// handlers) queue their frames first. With nothing else runnable this
	// returns at once; under load it is what turns one syscall per frame
	// into one per batch (measured: ~14 frames per write, 5x the throughput
	// in BenchmarkCallParallel32).
	w.mu.Unlock()
	runtime.Gosched()
	w.mu.Lock()
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		err := w.writeOut(out)
		w.mu.Lock()
		if cap(out) <= maxKeptBuffer {
			w.spare = out[:0]
		} else {
			w.spare = nil
		}
		if err != nil && w.err == nil {
			w.err = err
			w.conn.Close()
		}
	}
	w.flushing = false
	w.buf = w.buf[:0]
	err := w.err
	w.mu.Unlock()
	return err
}

func (w *frameWriter) writeOut(b []byte) error {
	// Keep a deadline at least 3/4 of the timeout ahead without paying for
	// SetWriteDeadline on every write.
	if now := time.Now(); w.deadline.Sub(now) < w.timeout*3/4 {
		w.deadline = now.Add(w.timeout)
		if err := w.conn.SetWriteDeadline(w.deadline); err != nil {
			return err
		}
	}
	_, err := w.conn.Write(b)
	return err
}

// poison makes later writes return errNotWritten. The connection's reader
// calls it when the connection fails, so requests that were not yet queued
// are reported as not sent rather than as lost.
func (w *frameWriter) poison(cause error) {
	if cause == nil {
		cause = net.ErrClosed
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = cause
	}
	w.mu.Unlock()
}
