package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCallRoundTrip(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	m.SetRPCHandler(echoHandler)
	c := newClient(t, ClientConfig{})

	tests := []struct {
		name   string
		method uint8
		req    []byte
	}{
		{"empty", 0, nil},
		{"small", 7, []byte("hello")},
		{"max method", 255, []byte{0, 1, 2}},
		{"larger than buffers", 3, bytes.Repeat([]byte("abcdefgh"), 20000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Call(ctxTimeout(t, 5*time.Second), m.Addr(), tt.method, tt.req)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			want := append([]byte{tt.method}, tt.req...)
			if !bytes.Equal(resp, want) {
				t.Fatalf("response of %d bytes, want %d", len(resp), len(want))
			}
		})
	}
}

func TestCallConcurrentResponsesMatchCallers(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	// Answer out of order: later-numbered requests finish first.
	m.SetRPCHandler(func(ctx context.Context, method uint8, req []byte) ([]byte, error) {
		n := binary.BigEndian.Uint32(req)
		time.Sleep(time.Duration(50-n%50) * 20 * time.Microsecond)
		return []byte(fmt.Sprintf("%d/%d", method, n)), nil
	})
	c := newClient(t, ClientConfig{ConnsPerPeer: 1})

	const callers, perCaller = 64, 50
	ctx := ctxTimeout(t, 20*time.Second)
	var wg sync.WaitGroup
	errc := make(chan error, callers)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perCaller; i++ {
				n := uint32(g*perCaller + i)
				req := binary.BigEndian.AppendUint32(nil, n)
				resp, err := c.Call(ctx, m.Addr(), uint8(g), req)
				if err != nil {
					errc <- err
					return
				}
				if want := fmt.Sprintf("%d/%d", uint8(g), n); string(resp) != want {
					errc <- fmt.Errorf("got %q, want %q", resp, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestCallPipelinesOnOneConnection(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	// Every handler waits until all n requests are in flight at once, which
	// can only happen if one connection carries them concurrently.
	const n = 50
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	m.SetRPCHandler(func(ctx context.Context, _ uint8, req []byte) ([]byte, error) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return req, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	c := newClient(t, ClientConfig{ConnsPerPeer: 1})
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprint(i)
			if resp, err := c.Call(ctx, m.Addr(), 1, []byte(want)); err != nil || string(resp) != want {
				t.Errorf("Call %d = %q, %v", i, resp, err)
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	conns := len(c.conns)
	c.mu.Unlock()
	if conns != 1 {
		t.Fatalf("client holds %d connections, want 1", conns)
	}
}

func TestCallRemoteError(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	m.SetRPCHandler(func(ctx context.Context, method uint8, req []byte) ([]byte, error) {
		switch method {
		case 1:
			return nil, fmt.Errorf("wrapped: %w", context.Canceled)
		default:
			panic("handler bug")
		}
	})
	c := newClient(t, ClientConfig{})
	ctx := ctxTimeout(t, 5*time.Second)

	_, err := c.Call(ctx, m.Addr(), 1, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "wrapped: context canceled" {
		t.Fatalf("Call = %v, want RemoteError with the handler's message", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) || errors.Is(err, ErrConnLost) {
		t.Fatalf("remote error must carry only its message: %v", err)
	}

	_, err = c.Call(ctx, m.Addr(), 2, nil)
	if !errors.As(err, &re) || !strings.Contains(re.Message, "handler bug") {
		t.Fatalf("panicking handler: Call = %v, want RemoteError", err)
	}
	// The connection survives both.
	m.SetRPCHandler(echoHandler)
	if _, err := c.Call(ctx, m.Addr(), 3, nil); err != nil {
		t.Fatalf("Call after remote errors: %v", err)
	}
}

func TestHandlerNotSetIsNotReady(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	c := newClient(t, ClientConfig{})
	ctx := ctxTimeout(t, 5*time.Second)

	_, err := c.Call(ctx, m.Addr(), 1, []byte("x"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != MsgNotReady {
		t.Fatalf("Call before SetRPCHandler = %v, want RemoteError %q", err, MsgNotReady)
	}
	m.SetRPCHandler(echoHandler)
	if resp, err := c.Call(ctx, m.Addr(), 1, []byte("x")); err != nil || string(resp) != "\x01x" {
		t.Fatalf("Call after SetRPCHandler = %q, %v", resp, err)
	}
}

func TestDeadlinePropagatesToHandler(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	type seen struct {
		remaining time.Duration
		ok        bool
	}
	got := make(chan seen, 1)
	m.SetRPCHandler(func(ctx context.Context, _ uint8, _ []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		got <- seen{time.Until(dl), ok}
		return nil, nil
	})
	c := newClient(t, ClientConfig{})

	if _, err := c.Call(ctxTimeout(t, 3*time.Second), m.Addr(), 1, nil); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if !s.ok || s.remaining <= 2*time.Second || s.remaining > 3*time.Second {
		t.Fatalf("handler deadline: ok=%v remaining=%v, want about 3s", s.ok, s.remaining)
	}

	if _, err := c.Call(context.Background(), m.Addr(), 1, nil); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.ok {
		t.Fatalf("handler has a deadline (%v) though the caller had none", s.remaining)
	}
}

func TestHandlerContextExpiresWithCallerDeadline(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	handlerErr := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the Mux closes
	m.SetRPCHandler(func(ctx context.Context, _ uint8, _ []byte) ([]byte, error) {
		<-ctx.Done()
		handlerErr <- ctx.Err()
		<-release // never answer, so the caller's own deadline decides
		return nil, ctx.Err()
	})
	c := newClient(t, ClientConfig{})
	_, err := c.Call(ctxTimeout(t, 100*time.Millisecond), m.Addr(), 1, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNoResponse) || errors.Is(err, ErrNotSent) {
		t.Fatalf("Call = %v, want ErrNoResponse wrapping DeadlineExceeded", err)
	}
	select {
	case err := <-handlerErr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handler ctx ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context did not expire")
	}
}

func TestCallContextCancelReturnsPromptly(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	started := make(chan struct{}, 1)
	m.SetRPCHandler(func(ctx context.Context, _ uint8, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done() // ends when the Mux closes
		return nil, ctx.Err()
	})
	c := newClient(t, ClientConfig{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, m.Addr(), 1, nil)
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNoResponse) || errors.Is(err, ErrNotSent) {
			t.Fatalf("Call = %v, want ErrNoResponse wrapping Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Call did not return after its context was cancelled")
	}

	// A context that is already done never sends.
	_, err := c.Call(ctx, m.Addr(), 1, nil)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with done ctx = %v, want ErrNotSent wrapping Canceled", err)
	}
}

func TestServerShutdownMidCallIsConnLost(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	const calls = 10
	started := make(chan struct{}, calls)
	m.SetRPCHandler(func(ctx context.Context, _ uint8, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c := newClient(t, ClientConfig{ConnsPerPeer: 1})

	ctx := ctxTimeout(t, 10*time.Second)
	errc := make(chan error, calls)
	for i := 0; i < calls; i++ {
		go func() {
			_, err := c.Call(ctx, m.Addr(), 1, nil)
			errc <- err
		}()
	}
	for i := 0; i < calls; i++ {
		<-started
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Mux.Close: %v", err)
	}
	for i := 0; i < calls; i++ {
		if err := <-errc; !errors.Is(err, ErrConnLost) || errors.Is(err, ErrNotSent) {
			t.Fatalf("Call = %v, want ErrConnLost", err)
		}
	}
}

func TestDeadConnReplacedWhileSiblingServes(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	m.SetRPCHandler(echoHandler)
	c := newClient(t, ClientConfig{ConnsPerPeer: 2})
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < 4; i++ {
		if _, err := c.Call(ctx, m.Addr(), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := c.peer(m.Addr())
	live := func(i int) bool {
		p.slots[i].mu.Lock()
		defer p.slots[i].mu.Unlock()
		return p.slots[i].conn != nil && !p.slots[i].conn.failed.Load()
	}
	waitFor(t, 5*time.Second, "both slots to be connected", func() bool { return live(0) && live(1) })

	// Kill one pooled connection from the client side.
	p.slots[0].mu.Lock()
	victim := p.slots[0].conn
	p.slots[0].mu.Unlock()
	victim.conn.Close()
	waitFor(t, 5*time.Second, "the reader to notice", victim.failed.Load)

	// No call fails: the live sibling serves while slot 0 redials.
	for i := 0; i < 20; i++ {
		if _, err := c.Call(ctx, m.Addr(), 1, nil); err != nil {
			t.Fatalf("Call %d: %v", i, err)
		}
	}
	waitFor(t, 5*time.Second, "slot 0 to be redialed", func() bool {
		p.slots[0].mu.Lock()
		defer p.slots[0].mu.Unlock()
		return p.slots[0].conn != nil && p.slots[0].conn != victim && !p.slots[0].conn.failed.Load()
	})
}

func TestDialClosedPortIsNotSent(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	c := newClient(t, ClientConfig{DialTimeout: time.Second})
	_, err = c.Call(ctxTimeout(t, 5*time.Second), addr, 1, nil)
	if !errors.Is(err, ErrNotSent) {
		t.Fatalf("Call to closed port = %v, want ErrNotSent", err)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	m.SetRPCHandler(echoHandler)
	addr := m.Addr()
	c := newClient(t, ClientConfig{ConnsPerPeer: 2})
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < 4; i++ { // fill both pooled connections
		if _, err := c.Call(ctx, addr, 1, nil); err != nil {
			t.Fatal(err)
		}
	}

	m.Close()
	// While the server is down nothing is sent and nothing hangs.
	waitFor(t, 5*time.Second, "calls to fail with ErrNotSent", func() bool {
		_, err := c.Call(ctx, addr, 1, nil)
		return errors.Is(err, ErrNotSent)
	})

	m2 := newMux(t, Config{BindAddr: addr})
	m2.SetRPCHandler(echoHandler)
	waitFor(t, 5*time.Second, "calls to succeed after restart", func() bool {
		_, err := c.Call(ctx, addr, 1, nil)
		return err == nil
	})
	// Every pooled connection has been replaced by a working one.
	for i := 0; i < 8; i++ {
		if _, err := c.Call(ctx, addr, 1, nil); err != nil {
			t.Fatalf("Call %d after restart: %v", i, err)
		}
	}
}

func TestClientClose(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	started := make(chan struct{}, 1)
	m.SetRPCHandler(func(ctx context.Context, _ uint8, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c := NewClient(ClientConfig{Logger: testLogger(t)})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxTimeout(t, 10*time.Second), m.Addr(), 1, nil)
		errc <- err
	}()
	<-started
	c.Close()
	if err := <-errc; !errors.Is(err, ErrConnLost) {
		t.Fatalf("pending Call after Close = %v, want ErrConnLost", err)
	}
	_, err := c.Call(context.Background(), m.Addr(), 1, nil)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close = %v, want ErrNotSent and ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSequentialCallsReuseHandlerGoroutine: one caller's back-to-back
// requests are served by the same long-lived worker, not a new goroutine
// each (whose stack would have to grow again every time).
func TestSequentialCallsReuseHandlerGoroutine(t *testing.T) {
	checkNoLeaks(t)
	m := newMux(t, Config{})
	var mu sync.Mutex
	seen := map[string]int{}
	m.SetRPCHandler(func(ctx context.Context, method uint8, req []byte) ([]byte, error) {
		buf := make([]byte, 64)
		id := strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1] // "goroutine N [running]:"
		mu.Lock()
		seen[id]++
		mu.Unlock()
		return nil, nil
	})
	c := newClient(t, ClientConfig{})
	for i := 0; i < 50; i++ {
		if _, err := c.Call(ctxTimeout(t, 5*time.Second), m.Addr(), 1, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// A goroutine per call would make 50. A few extra are legitimate: a call
	// can arrive in the instant between a worker's response and its return
	// to the idle wait.
	if len(seen) > 10 {
		t.Fatalf("50 sequential calls ran on %d goroutines, want them to share a worker: %v", len(seen), seen)
	}
}
