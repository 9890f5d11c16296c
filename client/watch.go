package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// EventType says what an Event reports.
type EventType string

const (
	// EventSet: the key now holds Value (a PUT, PATCH, incr or touch).
	EventSet EventType = "set"
	// EventDelete: the key was deleted (alone or by a bulk delete).
	EventDelete EventType = "delete"
	// EventExpire: the key's TTL passed and the cluster removed it.
	EventExpire EventType = "expire"
	// EventReset: the whole dataset was replaced (an online restore, or a
	// snapshot installed on the node serving the watch). Anything built from
	// earlier events must be read again.
	EventReset EventType = "reset"
	// EventProgress: every change up to Index has been delivered (only with
	// WatchOptions.Progress).
	EventProgress EventType = "progress"
)

// Event is one change, in log order.
type Event struct {
	Type EventType
	Key  string
	// Value is the stored JSON after a set; nil otherwise.
	Value json.RawMessage
	// Version is the key's version after a set, and Index otherwise.
	Version uint64
	// ExpiresAt is the key's absolute expiry after a set (the removed
	// entry's for a delete or expire); the zero Time means none.
	ExpiresAt time.Time
	// Index is the log index of the change. All changes of one write (a
	// bulk-delete chunk, a batch) share it and are delivered together.
	Index uint64
}

// WatchOptions tune Watch. The zero value watches from now, linearizably.
type WatchOptions struct {
	// FromIndex: deliver every change with a log index above it. 0 starts
	// at the moment of the call: after every write acknowledged before it.
	FromIndex uint64
	// Stale starts (and resumes) on whatever the node has applied, without
	// asking the leader first. Events are the same; only the start differs.
	Stale bool
	// Progress also yields EventProgress events.
	Progress bool
	// IdleTimeout: a stream that sends nothing (not even the server's
	// progress events, every 5 s by default) for this long is taken as
	// broken and resumed on another node. 0 means 20 s.
	IdleTimeout time.Duration
}

// Watch streams the changes to keys starting with prefix ("" for all) as an
// iterator. Events arrive in log order, each write's changes together. When
// a stream breaks (a node dies, the stream times out, the node closes it
// because the consumer fell behind) Watch resumes on the next endpoint from
// the last index it delivered, so across reconnections there is no gap and
// no duplicate. It yields an error and stops when the context ends, when the
// server refuses the watch for good (ErrCompacted: resync and watch again;
// ErrUnauthorized, ErrForbidden, ErrInvalid), or after Config.Retry's
// MaxAttempts consecutive failed connections.
func (c *Client) Watch(ctx context.Context, prefix string, opts WatchOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		w := &watchStream{c: c, prefix: prefix, opts: opts, from: opts.FromIndex, hasFrom: opts.FromIndex != 0}
		if w.opts.IdleTimeout <= 0 {
			w.opts.IdleTimeout = 20 * time.Second
		}
		w.run(ctx, yield)
	}
}

type watchStream struct {
	c       *Client
	prefix  string
	opts    WatchOptions
	from    uint64 // resume point: every change at or below it was delivered
	hasFrom bool
}

// errStopped: the consumer stopped iterating.
var errStopped = errors.New("watch stopped by its consumer")

func (w *watchStream) run(ctx context.Context, yield func(Event, error) bool) {
	c := w.c
	failures := 0
	n := uint64(len(c.endpoints))
	for {
		if failures > 0 {
			if err := sleepCtx(ctx, c.backoff(failures)); err != nil {
				yield(Event{}, err)
				return
			}
		}
		idx := c.next.Load()
		endpoint := c.endpoints[idx%n]
		delivered := false
		err := w.attempt(ctx, endpoint, func(ev Event) bool {
			delivered = true
			return yield(ev, nil)
		})
		switch {
		case errors.Is(err, errStopped):
			return
		case ctx.Err() != nil:
			yield(Event{}, ctx.Err())
			return
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status != 0 && !ae.Retryable && ae.Code != "closed" {
			yield(Event{}, err) // compacted, unauthorized, invalid: retrying cannot help
			return
		}
		c.next.CompareAndSwap(idx, idx+1) // resume elsewhere
		if errors.As(err, &ae) && ae.Code == "closed" {
			failures = 0 // the server ended the stream in order: resume at once
			continue
		}
		if delivered {
			failures = 0
		}
		failures++
		if failures >= c.retry.MaxAttempts {
			yield(Event{}, fmt.Errorf("watch gave up after %d failed connections: %w", failures, err))
			return
		}
	}
}

// attempt runs one stream on endpoint until it breaks; it returns why.
func (w *watchStream) attempt(ctx context.Context, endpoint string, yield func(Event) bool) error {
	q := url.Values{}
	if w.prefix != "" {
		q.Set("prefix", w.prefix)
	}
	if w.hasFrom {
		q.Set("fromIndex", strconv.FormatUint(w.from, 10))
	}
	if w.opts.Stale {
		q.Set("consistency", "stale")
	}
	cl := &call{method: http.MethodGet, path: "/kv/watch", query: q, streaming: true,
		header: http.Header{"Accept": []string{"text/event-stream"}}}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watchdog cancels a stream that stays silent past IdleTimeout.
	idle := time.AfterFunc(w.opts.IdleTimeout, cancel)
	defer idle.Stop()
	var streamErr error
	err := w.c.attempt(actx, cl, endpoint, func(endpoint string, resp *http.Response) error {
		streamErr = w.read(resp.Body, endpoint, idle, yield)
		return streamErr
	})
	if streamErr != nil {
		return streamErr
	}
	if err == nil {
		err = &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true, Err: io.ErrUnexpectedEOF}
	}
	return err
}

// maxEventBytes bounds one SSE line (a value of up to 1 GiB is JSON text).
const maxEventBytes = 1<<30 + 1<<20

// wireEvent is an event's data line.
type wireEvent struct {
	Type      EventType       `json:"type"`
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Version   uint64          `json:"version"`
	ExpiresAt *time.Time      `json:"expiresAt"`
	Index     uint64          `json:"index"`
	// closed events
	Reason    string `json:"reason"`
	LastIndex uint64 `json:"lastIndex"`
	Message   string `json:"message"`
}

// read parses the event stream. Changes are held until the event carrying
// the entry's id arrives, then yielded together, so a stream that breaks
// in the middle of a write's changes delivers none of them and the resume
// (from the last id) delivers them all.
func (w *watchStream) read(body io.Reader, endpoint string, idle *time.Timer, yield func(Event) bool) error {
	br := bufio.NewReaderSize(body, 64<<10)
	var pending []Event
	var id, event string
	var hasID bool
	var data []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true, Err: fmt.Errorf("watch stream: %w", err)}
		}
		idle.Reset(w.opts.IdleTimeout)
		if len(line) > 0 {
			switch {
			case bytes.HasPrefix(line, []byte("id: ")):
				id, hasID = string(line[4:]), true
			case bytes.HasPrefix(line, []byte("event: ")):
				event = string(line[7:])
			case bytes.HasPrefix(line, []byte("data: ")):
				data = append(data[:0], line[6:]...)
			}
			continue
		}
		if data == nil {
			continue // a comment or keep-alive
		}
		var we wireEvent
		if err := json.Unmarshal(data, &we); err != nil {
			return &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true, Err: fmt.Errorf("watch stream: bad event %q: %w", data, err)}
		}
		var idx uint64
		if hasID {
			if idx, err = strconv.ParseUint(id, 10, 64); err != nil {
				return &APIError{Endpoint: endpoint, Code: "unreachable", Retryable: true, Err: fmt.Errorf("watch stream: bad id %q", id)}
			}
		}
		switch event {
		case "":
			ev := Event{Type: we.Type, Key: we.Key, Version: we.Version, Index: we.Index}
			if we.Type == EventSet {
				ev.Value = append(json.RawMessage(nil), we.Value...)
			}
			if we.ExpiresAt != nil {
				ev.ExpiresAt = *we.ExpiresAt
			}
			pending = append(pending, ev)
		case "progress":
			if hasID && idx > w.from {
				w.from, w.hasFrom = idx, true
			}
			if w.opts.Progress && !yield(Event{Type: EventProgress, Index: we.Index}) {
				return errStopped
			}
		case "closed":
			if hasID && idx > w.from {
				w.from, w.hasFrom = idx, true
			}
			return &APIError{Endpoint: endpoint, Status: http.StatusOK, Code: "closed", Retryable: true, Message: we.Reason + ": " + we.Message}
		}
		if event == "" && hasID {
			// The entry is complete: deliver it, then move the resume point.
			for _, ev := range pending {
				if ev.Index <= w.from && w.hasFrom {
					continue // already delivered before a reconnection
				}
				if !yield(ev) {
					return errStopped
				}
			}
			pending = pending[:0]
			w.from, w.hasFrom = idx, true
		}
		event, hasID, data = "", false, nil
	}
}

// readLine returns one line without its "\n" (or "\r\n"), bounded by
// maxEventBytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
			if len(buf) > maxEventBytes {
				return nil, errors.New("event larger than the client accepts")
			}
		}
		line = buf
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}
