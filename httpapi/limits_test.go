package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestValueSizeLimit(t *testing.T) {
	const limit = 1 << 20 // the default
	e := newTestEnv(t, nil)

	// A string value of exactly limit bytes as compact JSON (quotes included).
	atLimit := `"` + strings.Repeat("a", limit-2) + `"`
	wantData(t, e.do("PUT", "/kv/items/big", `{"value": `+atLimit+`}`, bearer), http.StatusCreated, nil)

	calls := e.st.callCount()
	overLimit := `"` + strings.Repeat("a", limit-1) + `"`
	wantError(t, e.do("PUT", "/kv/items/big", `{"value": `+overLimit+`}`, bearer), http.StatusRequestEntityTooLarge, "too_large")

	// Whitespace around the value does not count: limit bytes of value, more on the wire.
	padded := "{\"value\":" + strings.Repeat(" ", 8000) + atLimit + strings.Repeat("\n", 4000) + "}"
	wantData(t, e.do("PUT", "/kv/items/big", padded, bearer), http.StatusOK, nil)
	if _, v, _ := e.st.last(); len(v) != limit {
		t.Errorf("stored %d bytes, want %d", len(v), limit)
	}
	if e.st.callCount() != calls+1 {
		t.Error("store called for an oversized value")
	}
}

func TestValueSizeLimitConfigured(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxValueBytes = 64 })
	exact := `"` + strings.Repeat("x", 62) + `"`
	wantData(t, e.do("PUT", "/kv/items/k", `{"value": `+exact+`}`, bearer), http.StatusCreated, nil)
	// A 64-byte (compact) object, pretty-printed: counted compact, so accepted.
	wantData(t, e.do("PUT", "/kv/items/k", "{\"value\": {\n    \"a\" :  \""+strings.Repeat("x", 56)+"\"\n}}", bearer), http.StatusOK, nil)
	if _, v, _ := e.st.last(); len(v) != 64 {
		t.Errorf("stored %d bytes: %s", len(v), v)
	}
	calls := e.st.callCount()
	eb := wantError(t, e.do("PUT", "/kv/items/k", `{"value": "`+strings.Repeat("x", 63)+`"}`, bearer), http.StatusRequestEntityTooLarge, "too_large")
	if !strings.Contains(eb.Message, "65 bytes") || !strings.Contains(eb.Message, "64 bytes") {
		t.Errorf("message = %q", eb.Message)
	}
	// A body past the read bound is cut off while reading.
	huge := `{"value": "` + strings.Repeat("x", envelopeAllowance+100) + `"}`
	wantError(t, e.do("PUT", "/kv/items/k", huge, bearer), http.StatusRequestEntityTooLarge, "too_large")
	if e.st.callCount() != calls {
		t.Error("store called for an oversized value")
	}
}

// TestHugeBody sends 50 MiB over a raw connection, with and without a
// Content-Length, and expects 413 without the store being called. A raw
// connection lets the test read the early response while its writer is
// still pushing (or failing to push) the rest of the body.
func TestHugeBody(t *testing.T) {
	const size = 50 << 20
	e := newTestEnv(t, nil)
	tests := []struct {
		name    string
		chunked bool
		auth    string
		status  int
		code    string
	}{
		{"content-length", false, bearer, http.StatusRequestEntityTooLarge, "too_large"},
		{"chunked", true, bearer, http.StatusRequestEntityTooLarge, "too_large"},
		{"unauthenticated", false, "", http.StatusUnauthorized, "unauthorized"},
		{"unauthenticated chunked", true, "", http.StatusUnauthorized, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := rawPut(t, e.srv.Listener.Addr().String(), "/kv/items/huge", tt.auth, size, tt.chunked)
			wantError(t, res, tt.status, tt.code)
		})
	}
	if n := e.st.callCount(); n != 0 {
		t.Errorf("store called %d times", n)
	}
}

// rawPut writes a PUT whose body is {"value": "xxxx...} of about size bytes,
// in a goroutine, and returns the response read concurrently.
func rawPut(t *testing.T, addr, path, auth string, size int, chunked bool) result {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}

	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		w := bufio.NewWriterSize(conn, 64<<10)
		fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n", path)
		if auth != "" {
			fmt.Fprintf(w, "Authorization: %s\r\n", auth)
		}
		if chunked {
			fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n")
		} else {
			fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", size)
		}
		chunk := []byte(`{"value": "` + strings.Repeat("x", 64<<10-11))
		for sent := 0; sent < size; sent += len(chunk) {
			if chunked {
				fmt.Fprintf(w, "%x\r\n", len(chunk))
			}
			if _, err := w.Write(chunk); err != nil {
				return // the server stopped reading and closed: expected
			}
			if chunked {
				w.WriteString("\r\n")
			}
			chunk = []byte(strings.Repeat("x", len(chunk)))
		}
		w.Flush()
	}()

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	conn.Close() // unblocks the writer if the server left the connection open
	<-writeDone
	return result{status: resp.StatusCode, header: resp.Header, body: body}
}
