package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSilentConnectionClosedAfterHandshakeTimeout(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{HandshakeTimeout: 100 * time.Millisecond})
	conn := dialRaw(t, m.Addr())
	start := time.Now()
	expectClosedByPeer(t, conn, 5*time.Second)
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("closed after %v, before the handshake timeout", el)
	}
}

func TestBadConnectionsDoNotAffectOthers(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{MaxFrameBytes: 1024})
	m.SetRPCHandler(echoHandler)
	c := newClient(t, ClientConfig{ConnsPerPeer: 1})
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Call(ctx, m.Addr(), 1, nil); err != nil {
		t.Fatal(err)
	}

	hdr := func(length uint32) []byte {
		return appendFrameHeader(nil, frameHeader{id: 1, kind: 1}, int(length)-(headerLen-prefixLen))
	}
	tests := []struct {
		name  string
		bytes []byte
	}{
		{"unknown protocol byte", []byte{0x7f, 'h', 'i'}},
		{"http on the peer port", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"rpc frame shorter than its header", append([]byte{ProtoRPC}, hdr(3)...)},
		{"rpc frame over the limit", append([]byte{ProtoRPC}, hdr(1<<30)...)},
		{"rpc garbage", append([]byte{ProtoRPC}, bytes.Repeat([]byte{0xff}, 64)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialRaw(t, m.Addr())
			if _, err := conn.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			expectClosedByPeer(t, conn, 5*time.Second)
			// The established client connection is untouched.
			if resp, err := c.Call(ctx, m.Addr(), 2, []byte("ok")); err != nil || string(resp) != "\x02ok" {
				t.Fatalf("Call after bad connection = %q, %v", resp, err)
			}
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.conns) != 1 {
		t.Fatalf("client redialed: %d connections", len(c.conns))
	}
}

func TestOversizedFrames(t *testing.T) {
	checkNoLeaks(t)
	const limit = 1024
	m := newMux(t, Config{MaxFrameBytes: limit})
	m.SetRPCHandler(echoHandler)
	ctx := ctxTimeout(t, 10*time.Second)

	t.Run("request over the client limit is not sent", func(t *testing.T) {
		c := newClient(t, ClientConfig{MaxFrameBytes: limit})
		_, err := c.Call(ctx, m.Addr(), 1, make([]byte, limit-headerLen+1))
		if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("Call = %v, want ErrNotSent and ErrFrameTooLarge", err)
		}
		// Exactly at the limit is fine (the echo adds a byte, so ask for one less).
		if _, err := c.Call(ctx, m.Addr(), 1, make([]byte, limit-headerLen-1)); err != nil {
			t.Fatalf("Call at the limit: %v", err)
		}
	})

	t.Run("request over the server limit closes the connection", func(t *testing.T) {
		c := newClient(t, ClientConfig{MaxFrameBytes: 4 * limit})
		_, err := c.Call(ctx, m.Addr(), 1, make([]byte, 2*limit))
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("Call = %v, want ErrConnLost", err)
		}
		// The next call redials and works.
		if _, err := c.Call(ctx, m.Addr(), 1, []byte("x")); err != nil {
			t.Fatalf("Call after rejected frame: %v", err)
		}
	})

	t.Run("response over the server limit becomes a remote error", func(t *testing.T) {
		c := newClient(t, ClientConfig{MaxFrameBytes: 4 * limit})
		_, err := c.Call(ctx, m.Addr(), 1, make([]byte, limit-headerLen)) // echo adds one byte
		var re *RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "exceeds the frame limit") {
			t.Fatalf("Call = %v, want RemoteError about the frame limit", err)
		}
	})

	t.Run("response over the client limit breaks the connection", func(t *testing.T) {
		big := newMux(t, Config{MaxFrameBytes: 4 * limit})
		big.SetRPCHandler(func(_ context.Context, _ uint8, _ []byte) ([]byte, error) {
			return make([]byte, 2*limit), nil
		})
		c := newClient(t, ClientConfig{MaxFrameBytes: limit})
		_, err := c.Call(ctx, big.Addr(), 1, nil)
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("Call = %v, want ErrConnLost", err)
		}
	})
}

func TestReadFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := []struct {
		h       frameHeader
		payload []byte
	}{
		{frameHeader{id: 1, kind: 2, timeout: 3}, []byte("abc")},
		{frameHeader{id: 1<<64 - 1, kind: 255, timeout: -1}, nil},
		{frameHeader{id: 42, kind: statusError, timeout: 0}, bytes.Repeat([]byte{9}, 5000)},
	}
	for _, f := range frames {
		buf.Write(appendFrameHeader(nil, f.h, len(f.payload)))
		buf.Write(f.payload)
	}
	br := bufio.NewReader(&buf)
	for _, f := range frames {
		h, p, err := readFrame(br, DefaultMaxFrameBytes)
		if err != nil || h != f.h || !bytes.Equal(p, f.payload) {
			t.Fatalf("readFrame = %+v, %d bytes, %v; want %+v, %d bytes", h, len(p), err, f.h, len(f.payload))
		}
	}
	if _, _, err := readFrame(br, DefaultMaxFrameBytes); err == nil {
		t.Fatal("readFrame at end of stream succeeded")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrameHeader(nil, frameHeader{id: 1, kind: 1}, 0))
	f.Add(append(appendFrameHeader(nil, frameHeader{id: 7, kind: 3, timeout: 99}, 2), 'h', 'i'))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for {
			h, p, err := readFrame(br, 4096)
			if err != nil {
				return
			}
			if len(p)+headerLen > 4096 {
				t.Fatalf("accepted %d-byte payload over the limit", len(p))
			}
			_ = h
		}
	})
}
