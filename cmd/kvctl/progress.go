package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows a long transfer's bytes and rate on stderr, rewriting one
// line at most every progressEvery, when stderr is a terminal; otherwise it
// counts silently, so piped and scripted runs print nothing extra.
type progress struct {
	sio   stdio
	verb  string // "saved", "sent"
	start time.Time

	mu    sync.Mutex
	n     int64
	last  time.Time
	shown bool
}

// progressEvery is a variable for tests.
var progressEvery = 250 * time.Millisecond

func newProgress(sio stdio, verb string) *progress {
	now := time.Now()
	return &progress{sio: sio, verb: verb, start: now, last: now}
}

func (p *progress) add(n int) {
	if !p.sio.errTerminal {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.print(now)
	}
}

func (p *progress) print(now time.Time) {
	rate := float64(p.n) / max(now.Sub(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.sio.err, "\r\033[K%s %s (%s/s)", p.verb, humanBytes(float64(p.n)), humanBytes(rate))
	p.shown = true
}

// done ends the progress line with the final figures, if one was shown.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		p.print(time.Now())
		fmt.Fprintln(p.sio.err)
	}
}

func (p *progress) writer(w io.Writer) io.Writer { return &progressWriter{w: w, p: p} }

// reader wraps r; the result is an io.Seeker when r is one (so a refused
// restore can be retried), rewinding the count with it.
func (p *progress) reader(r io.Reader) io.Reader {
	if s, ok := r.(io.ReadSeeker); ok {
		return &progressReadSeeker{progressReader{r: r, p: p}, s}
	}
	return &progressReader{r: r, p: p}
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

type progressReadSeeker struct {
	progressReader
	s io.Seeker
}

func (r *progressReadSeeker) Seek(off int64, whence int) (int64, error) {
	n, err := r.s.Seek(off, whence)
	if err == nil {
		r.p.mu.Lock()
		r.p.n = n
		r.p.mu.Unlock()
	}
	return n, err
}

// humanBytes renders n bytes with a binary unit.
func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	units := "KMGTPE"
	i := 0
	for n /= unit; n >= unit && i < len(units)-1; n /= unit {
		i++
	}
	return fmt.Sprintf("%.1f %ciB", n, units[i])
}
