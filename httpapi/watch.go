package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/store"
	"github.com/quorumkv/quorumkv/watch"
)

// DefaultWatchMaxDuration is WatchConfig.MaxDuration's default.
const DefaultWatchMaxDuration = 30 * time.Minute

// WatchConfig bounds GET /kv/watch streams and blocking reads. Zero fields
// take the defaults named on each.
type WatchConfig struct {
	// MaxDuration ends a stream (with a "closed" event whose reason is
	// max_duration and the index to resume from). Default 30 minutes.
	MaxDuration time.Duration
	// ProgressInterval: a stream with nothing to send for this long sends a
	// progress event with the node's applied index, which also keeps proxies
	// from closing an idle connection. Default 5 s.
	ProgressInterval time.Duration
	// WriteTimeout: a stream whose client does not take an event within this
	// long is cut off (a stalled reader). Default 10 s.
	WriteTimeout time.Duration
	// MaxWait bounds ?wait= of a blocking read. Default 5 minutes.
	MaxWait time.Duration
	// Coalesce: after sending events, a stream waits this long before
	// taking the next ones, so that under a high write rate each watcher
	// wakes and writes once per interval instead of once per write. A quiet
	// stream still sends a lone change at once. Default 10 ms.
	Coalesce time.Duration
}

func (c WatchConfig) withDefaults() WatchConfig {
	if c.MaxDuration <= 0 {
		c.MaxDuration = DefaultWatchMaxDuration
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Minute
	}
	if c.Coalesce <= 0 {
		c.Coalesce = 10 * time.Millisecond
	}
	return c
}

// watchBatch is the most changes a stream takes from the hub at once (whole
// log entries may take it a little over).
const watchBatch = 256

var errWatchOverloaded = apiError{
	status: http.StatusServiceUnavailable, code: "overloaded", retryable: true, retryAfter: true,
	message: "This node already serves its limit of watch streams and blocking reads; retry shortly, or watch from another node.",
}

// watchError maps the hub's refusals; anything else goes through storeErrors.
func watchError(err error) error {
	var ce *watch.CompactedError
	switch {
	case errors.As(err, &ce):
		return &apiError{status: http.StatusGone, code: "compacted", oldest: ce.Oldest, hasOldest: true,
			message: fmt.Sprintf("This node no longer holds the changes after index %d; the oldest index it serves is %d. Read the current state again (GET /kv/items?prefix=...) and watch from the index of that read.", ce.From, ce.Oldest)}
	case errors.Is(err, watch.ErrOverloaded):
		return &errWatchOverloaded
	case errors.Is(err, watch.ErrClosed):
		return store.ErrShuttingDown
	}
	return err
}

// watchRequest parses ?prefix, ?fromIndex (or Last-Event-ID, which wins: it
// is what a reconnecting EventSource sends) and the read level.
func watchRequest(r *http.Request) (store.WatchRequest, error) {
	q := r.URL.Query()
	req := store.WatchRequest{Prefix: q.Get("prefix")}
	if len(q["prefix"]) > 1 {
		return req, errInvalidParameter("prefix must be given at most once.")
	}
	if req.Prefix != "" {
		if _, err := parseKey(req.Prefix); err != nil {
			return req, errInvalidParameter("prefix is not a valid key prefix: " + err.Error())
		}
	}
	opts, err := readOptions(r)
	if err != nil {
		return req, err
	}
	if opts.MinIndex != 0 {
		return req, errInvalidParameter("minIndex is not supported on /kv/watch; use fromIndex.")
	}
	req.Level = opts.Level
	from, hasFrom := "", false
	if v, ok := q["fromIndex"]; ok {
		if len(v) > 1 {
			return req, errInvalidParameter("fromIndex must be given at most once.")
		}
		from, hasFrom = v[0], true
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		from, hasFrom = v, true
	}
	if hasFrom {
		n, err := strconv.ParseUint(from, 10, 64)
		if err != nil {
			return req, errInvalidParameter("fromIndex (or Last-Event-ID) must be a log index: a non-negative integer, as sent in an event's id.")
		}
		req.From, req.HasFrom = n, true
	}
	return req, nil
}

// watchItems serves GET /kv/watch as Server-Sent Events: every change to a key
// under ?prefix after ?fromIndex (or Last-Event-ID), in log order, then live
// changes, from this node's own applied log. See docs/watch.md.
//
// Each change is one event, `data:` a JSON object {type, key, version, value
// (set only), expiresAt, index}. `id:` (the log index) is on the last event of
// each log entry only, so a resume from the last id never splits an entry
// that changed several keys. "progress" events carry the index this stream
// has caught up to; a "closed" event ends the stream with a reason and the
// index to resume from.
func (a *api) watchItems(r *http.Request) (reply, error) {
	req, err := watchRequest(r)
	if err != nil {
		return reply{}, err
	}
	w, err := a.st.Watch(r.Context(), req)
	if err != nil {
		return reply{}, watchError(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set(headerIndex, strconv.FormatUint(w.Through(), 10))
	return reply{status: http.StatusOK, header: h, sse: func(ctx context.Context, rw http.ResponseWriter) {
		defer w.Close()
		a.streamWatch(ctx, rw, w)
	}}, nil
}

// streamWatch writes w's changes to rw until the client leaves, the stream
// reaches MaxDuration, the watcher lags or the node shuts down.
func (a *api) streamWatch(ctx context.Context, rw http.ResponseWriter, w *watch.Watcher) {
	cfg := a.cfg.Watch
	rc := http.NewResponseController(rw)
	// The server's read and write timeouts are sized for API calls: lift
	// them for this stream, which bounds itself (MaxDuration, WriteTimeout).
	_ = rc.SetReadDeadline(time.Time{})
	bw := bufio.NewWriterSize(rw, 32<<10)
	end := time.Now().Add(cfg.MaxDuration)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if bw.Flush() != nil {
			return false
		}
		return rc.Flush() == nil
	}
	var buf []fsm.Change
	var line []byte
	pause := time.NewTimer(0)
	defer pause.Stop()
	<-pause.C
	line = appendProgress(line[:0], "progress", w)
	if _, err := bw.Write(line); err != nil || !flush() {
		return
	}
	for {
		wait := min(cfg.ProgressInterval, time.Until(end))
		nctx, cancel := context.WithTimeout(ctx, wait)
		var err error
		buf, err = w.Next(nctx, buf[:0], watchBatch)
		cancel()
		for i := range buf {
			last := i == len(buf)-1 || buf[i+1].Index != buf[i].Index
			line = appendChangeEvent(line[:0], &buf[i], last)
			if _, werr := bw.Write(line); werr != nil {
				return
			}
		}
		var reason string
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return // the client left
		case errors.Is(err, context.DeadlineExceeded):
			if !time.Now().Before(end) {
				reason = "max_duration"
			} else {
				line = appendProgress(line[:0], "progress", w)
				_, _ = bw.Write(line)
			}
		case errors.Is(err, watch.ErrLagged):
			reason = "lagging"
		case errors.Is(err, watch.ErrClosed):
			reason = "shutting_down"
		default:
			reason = "error"
		}
		if reason != "" {
			line = appendClosed(line[:0], reason, w)
			_, _ = bw.Write(line)
			flush()
			return
		}
		if !flush() {
			return // a stalled or vanished reader: cut off
		}
		if len(buf) > 0 {
			pause.Reset(cfg.Coalesce)
			select {
			case <-pause.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// appendChangeEvent formats c as one SSE event. The JSON has the same fields
// as an item, plus type and index; expiresAt is null or RFC 3339.
func appendChangeEvent(b []byte, c *fsm.Change, withID bool) []byte {
	if withID {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, c.Index, 10)
		b = append(b, '\n')
	}
	b = append(b, `data: {"type":"`...)
	b = append(b, c.Type.String()...)
	b = append(b, `","key":`...)
	b = appendJSONString(b, c.Key)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, c.Version, 10)
	if c.Type == fsm.ChangeSet {
		b = append(b, `,"value":`...)
		b = append(b, c.Value...) // compact JSON: no newline can end the data line
	}
	b = append(b, `,"expiresAt":`...)
	b = appendExpiry(b, expiryTime(c.ExpiresAt))
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, c.Index, 10)
	return append(b, "}\n\n"...)
}

func expiryTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// appendProgress: every change up to "index" has been sent; id is the index
// to resume from.
func appendProgress(b []byte, event string, w *watch.Watcher) []byte {
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\nid: "...)
	b = strconv.AppendUint(b, w.Through(), 10)
	b = append(b, `
data: {"type":"progress","index":`...)
	b = strconv.AppendUint(b, w.Progress(), 10)
	return append(b, "}\n\n"...)
}

// appendClosed is the stream's last event: why it ends and where to resume.
func appendClosed(b []byte, reason string, w *watch.Watcher) []byte {
	msg := map[string]string{
		"lagging":       "This watcher fell too far behind the node's changes and was closed; resume from lastIndex (here or on another node).",
		"max_duration":  "The stream reached its maximum duration; resume from lastIndex.",
		"shutting_down": "This node is shutting down; resume from lastIndex on another node.",
		"error":         "The stream failed; resume from lastIndex.",
	}[reason]
	b = append(b, "event: closed\nid: "...)
	b = strconv.AppendUint(b, w.Through(), 10)
	b = append(b, "\ndata: {\"type\":\"closed\",\"reason\":\""...)
	b = append(b, reason...)
	b = append(b, `","lastIndex":`...)
	b = strconv.AppendUint(b, w.Through(), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return append(b, "}\n\n"...)
}

// parseWait parses ?waitIndex and ?wait of a blocking read; ok is false when
// the request is an ordinary read.
func (a *api) parseWait(r *http.Request) (index uint64, wait time.Duration, ok bool, err error) {
	q := r.URL.Query()
	v, has := q["waitIndex"]
	if !has {
		if _, w := q["wait"]; w {
			return 0, 0, false, errInvalidParameter("wait needs waitIndex: the X-KV-Index (or version) your last read returned.")
		}
		return 0, 0, false, nil
	}
	if len(v) > 1 {
		return 0, 0, false, errInvalidParameter("waitIndex must be given once.")
	}
	if index, err = strconv.ParseUint(v[0], 10, 64); err != nil {
		return 0, 0, false, errInvalidParameter("waitIndex must be a log index: a non-negative integer, such as the X-KV-Index of your last read.")
	}
	wait = a.cfg.Watch.MaxWait
	if w := q.Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 || d > a.cfg.Watch.MaxWait {
			return 0, 0, false, errInvalidParameter(fmt.Sprintf("wait must be a duration such as 30s, above 0 and at most %s.", a.cfg.Watch.MaxWait))
		}
		wait = d
	}
	return index, wait, true, nil
}

// blockingRead answers GET /kv/items/{key}?waitIndex=N once the key changed
// (set, delete or expiry) at an index above N, or when wait ends: then the
// item is read as an ordinary GET at the request's read level. It runs after
// the request's usual deadline is gone (serve calls it with the connection's
// context), bounded by wait. X-KV-Index on the answer is the index to pass
// as the next waitIndex.
func (a *api) blockingRead(r *http.Request, key string, index uint64, wait time.Duration, read endpoint) (reply, error) {
	// Subscribe now (a stale start: the changes come from this node's log) so
	// that a change landing between this request and the wait is not missed.
	w, err := a.st.Watch(r.Context(), store.WatchRequest{Prefix: key, From: index, HasFrom: true, Level: store.Stale})
	var ce *watch.CompactedError
	switch {
	case errors.As(err, &ce):
		return read(r) // the key may have changed since; answer now
	case err != nil:
		return reply{}, watchError(err)
	}
	return reply{laterFor: wait, later: func(ctx context.Context) (reply, error) {
		defer w.Close()
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		var buf []fsm.Change
		for changed := false; !changed; {
			if buf, err = w.Next(wctx, buf[:0], watchBatch); err != nil {
				break // the wait ended (or the watcher lagged): answer with the current state
			}
			for _, c := range buf {
				changed = changed || c.Key == key || c.Type == fsm.ChangeReset
			}
		}
		if ctx.Err() != nil {
			return reply{}, ctx.Err()
		}
		rctx, rcancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		defer rcancel()
		rep, err := read(r.WithContext(rctx))
		if errors.Is(err, store.ErrNotFound) {
			// The key is absent: its 404 still says where to wait from next.
			e, _ := resolveError(err)
			withIndex := *e
			withIndex.index = max(w.Progress(), index)
			return reply{}, &withIndex
		}
		return rep, err
	}}, nil
}
