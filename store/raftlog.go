package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// raftLogger adapts hashicorp/raft's hclog.Logger to slog, so raft's lines go
// through the node's one handler with component=raft instead of a second format.
type raftLogger struct {
	l       *slog.Logger
	name    string
	implied []any
}

func newRaftLogger(l *slog.Logger) hclog.Logger {
	return &raftLogger{l: l.With("component", "raft")}
}

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (r *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	args = formatArgs(args)
	// raft's transport reports a connection this node closed while shutting
	// down as a decode error; that is expected, not an error.
	if level >= hclog.Warn && closedConnErr(args) {
		level = hclog.Debug
	}
	lv := slogLevel(level)
	if !r.l.Enabled(context.Background(), lv) {
		return
	}
	if r.name != "" {
		args = append(args, "logger", r.name)
	}
	r.l.Log(context.Background(), lv, msg, args...)
}

// formatArgs renders hclog.Format values (a format string and its operands),
// which slog would print as a raw slice, and renames raft's keys that collide
// with the node-wide attributes (raft logs "node" with its *Raft), so that
// "node" and "component" keep one meaning on every line.
func formatArgs(args []any) []any {
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && (k == "node" || k == "component") {
			args[i] = "raft_" + k
			if s, ok := args[i+1].(fmt.Stringer); ok {
				args[i+1] = s.String()
			}
		}
	}
	return args
}

func closedConnErr(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

func (r *raftLogger) Trace(msg string, args ...any) { r.Log(hclog.Trace, msg, args...) }
func (r *raftLogger) Debug(msg string, args ...any) { r.Log(hclog.Debug, msg, args...) }
func (r *raftLogger) Info(msg string, args ...any)  { r.Log(hclog.Info, msg, args...) }
func (r *raftLogger) Warn(msg string, args ...any)  { r.Log(hclog.Warn, msg, args...) }
func (r *raftLogger) Error(msg string, args ...any) { r.Log(hclog.Error, msg, args...) }

func (r *raftLogger) enabled(level hclog.Level) bool {
	return r.l.Enabled(context.Background(), slogLevel(level))
}
func (r *raftLogger) IsTrace() bool { return r.enabled(hclog.Trace) }
func (r *raftLogger) IsDebug() bool { return r.enabled(hclog.Debug) }
func (r *raftLogger) IsInfo() bool  { return r.enabled(hclog.Info) }
func (r *raftLogger) IsWarn() bool  { return r.enabled(hclog.Warn) }
func (r *raftLogger) IsError() bool { return r.enabled(hclog.Error) }

func (r *raftLogger) ImpliedArgs() []any { return r.implied }

func (r *raftLogger) With(args ...any) hclog.Logger {
	return &raftLogger{l: r.l.With(args...), name: r.name, implied: append(append([]any{}, r.implied...), args...)}
}

func (r *raftLogger) Name() string { return r.name }

func (r *raftLogger) Named(name string) hclog.Logger {
	n := name
	if r.name != "" {
		n = r.name + "." + name
	}
	return &raftLogger{l: r.l, name: n, implied: r.implied}
}

func (r *raftLogger) ResetNamed(name string) hclog.Logger {
	return &raftLogger{l: r.l, name: name, implied: r.implied}
}

// SetLevel is ignored: the slog handler's level decides.
func (r *raftLogger) SetLevel(hclog.Level) {}

func (r *raftLogger) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if r.enabled(lv) {
			return lv
		}
	}
	return hclog.Error
}

func (r *raftLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(r.StandardWriter(opts), "", 0)
}

func (r *raftLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return lineWriter{r}
}

// lineWriter turns standard-library log lines (used by raft-boltdb and the
// network transport) into info records.
type lineWriter struct{ r *raftLogger }

func (w lineWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	switch {
	case strings.HasPrefix(msg, "[ERR"):
		level = hclog.Error
	case strings.HasPrefix(msg, "[WARN"):
		level = hclog.Warn
	case strings.HasPrefix(msg, "[DEBUG"):
		level = hclog.Debug
	}
	w.r.Log(level, msg)
	return len(p), nil
}
