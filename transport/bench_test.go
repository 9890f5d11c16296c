package transport

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func benchmarkCall(b *testing.B, parallelism, payload int) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := newMux(b, Config{Logger: quiet})
	m.SetRPCHandler(func(_ context.Context, _ uint8, req []byte) ([]byte, error) { return req, nil })
	c := newClient(b, ClientConfig{Logger: quiet})
	req := make([]byte, payload)
	ctx := context.Background()
	if _, err := c.Call(ctx, m.Addr(), 1, req); err != nil { // dial outside the timer
		b.Fatal(err)
	}
	b.SetBytes(int64(payload))
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 0 {
		for b.Loop() {
			if _, err := c.Call(ctx, m.Addr(), 1, req); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Call(ctx, m.Addr(), 1, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallParallel measures throughput of small requests from
// GOMAXPROCS goroutines sharing one Client (RunParallel's default).
func BenchmarkCallParallel(b *testing.B) { benchmarkCall(b, 1, 64) }

// BenchmarkCallParallel32 uses 32 goroutines per CPU, like many concurrent
// forwarded writes: this is where pipelining and flush coalescing pay.
func BenchmarkCallParallel32(b *testing.B) { benchmarkCall(b, 32, 64) }

// BenchmarkCallParallel4K is BenchmarkCallParallel32 with 4 KiB payloads.
func BenchmarkCallParallel4K(b *testing.B) { benchmarkCall(b, 32, 4096) }

// BenchmarkCallSerial measures one caller's round-trip latency.
func BenchmarkCallSerial(b *testing.B) { benchmarkCall(b, 0, 64) }
