package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// command is one kvctl subcommand.
type command struct {
	name    string
	args    string // positional arguments, for usage
	summary string
	detail  string // extra usage text, may be empty
	minArgs int
	maxArgs int // -1: unbounded
	// streaming commands get no default --timeout.
	streaming bool
	flags     func(fs *flag.FlagSet)
	run       func(ctx context.Context, e *env, args []string) error
}

// commands is every subcommand. A command's flag values live in variables
// captured by its flags and run functions; flags resets them to their
// defaults, so run may be called many times in one process (tests do), but
// not concurrently.
var commands []*command

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func init() {
	commands = []*command{
		getCommand(), putCommand(), delCommand(), lsCommand(), ttlCommand(), incrCommand(), txnCommand(),
		statusCommand(), nodesCommand(), joinCommand(), removeCommand(), transferCommand(), snapshotCommand(),
		watchCommand(),
		versionCommand(),
	}
}

// itemJSON is how -o json prints an item or a write result.
type itemJSON struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value,omitempty"`
	Version        uint64          `json:"version"`
	ExpiresAt      *string         `json:"expiresAt"`
	TTLRemainingMs *int64          `json:"ttlRemainingMs,omitempty"`
	Created        *bool           `json:"created,omitempty"`
	Index          uint64          `json:"index,omitempty"`
}

func expiresJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05.000Z")
	return &s
}

// describeExpiry is the human form of an expiry.
func describeExpiry(t time.Time) string {
	if t.IsZero() {
		return "never expires"
	}
	left := max(time.Until(t), 0)
	if left >= 10*time.Second {
		left = left.Round(time.Second)
	} else {
		left = left.Round(time.Millisecond)
	}
	return fmt.Sprintf("expires %s (in %s)", t.UTC().Format("2006-01-02T15:04:05.000Z"), left)
}

// parseTTL reads a TTL as a Go duration ("90s", "1h30m") or a number of
// seconds ("86400", "0.5").
func parseTTL(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || f > 315_576_000 {
			return 0, usagef("TTL %q must be more than 0 and at most 10 years", s)
		}
		return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("TTL %q is neither a number of seconds nor a positive duration like 90s or 1h", s)
	}
	return d, nil
}

// ttlFlag is an optional --ttl.
type ttlFlag struct {
	d   time.Duration
	set bool
}

func (t *ttlFlag) String() string {
	if !t.set {
		return ""
	}
	return t.d.String()
}

func (t *ttlFlag) Set(s string) error {
	d, err := parseTTL(s)
	if err != nil {
		return err
	}
	t.d, t.set = d, true
	return nil
}

// versionFlag is an optional --if-match.
type versionFlag struct {
	v   uint64
	set bool
}

func (v *versionFlag) String() string {
	if !v.set {
		return ""
	}
	return strconv.FormatUint(v.v, 10)
}

func (v *versionFlag) Set(s string) error {
	n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(s, "W/"), `"`), 10, 64)
	if err != nil || n == 0 {
		return fmt.Errorf("%q is not a version (a positive integer, as in the ETag)", s)
	}
	v.v, v.set = n, true
	return nil
}

func getCommand() *command {
	var stale bool
	return &command{
		name: "get", args: "KEY", minArgs: 1, maxArgs: 1,
		summary: "print the value at KEY (exit 3 if missing or expired)",
		detail:  "Text output is the stored JSON value, byte for byte; -o json adds version, expiresAt and ttlRemainingMs.",
		flags:   func(fs *flag.FlagSet) { fs.BoolVar(&stale, "stale", false, "read from the receiving node's own state") },
		run: func(ctx context.Context, e *env, args []string) error {
			var opts []client.Option
			if stale {
				opts = append(opts, client.Stale())
			}
			it, err := e.c.Get(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			if !e.json {
				fmt.Fprintf(e.io.out, "%s\n", it.Value)
				return nil
			}
			out := itemJSON{Key: it.Key, Value: it.Value, Version: it.Version, ExpiresAt: expiresJSON(it.ExpiresAt)}
			if !it.ExpiresAt.IsZero() {
				ms := it.TTLRemaining.Milliseconds()
				out.TTLRemainingMs = &ms
			}
			return writeJSON(e.io.out, out)
		},
	}
}

func putCommand() *command {
	var ttl ttlFlag
	var ifMatch versionFlag
	var createOnly, keepTTL, asString bool
	return &command{
		name: "put", args: "KEY [VALUE|-]", minArgs: 1, maxArgs: 2,
		summary: "store a JSON value at KEY (from the argument, or stdin when absent or -)",
		detail: "VALUE must be JSON: quote strings ('\"text\"') or pass --string. A value starting with - goes after --:\n" +
			"  kvctl put counter -- -5",
		flags: func(fs *flag.FlagSet) {
			ttl, ifMatch = ttlFlag{}, versionFlag{}
			fs.Var(&ttl, "ttl", "expire after `TTL`: seconds (86400, 0.5) or a duration (90s, 1h)")
			fs.Var(&ifMatch, "if-match", "write only if the key's current `VERSION` is this one (else exit 4)")
			fs.BoolVar(&createOnly, "create-only", false, "write only if the key does not exist (else exit 4)")
			fs.BoolVar(&keepTTL, "keep-ttl", false, "keep the key's current expiry")
			fs.BoolVar(&asString, "string", false, "store the input as a JSON string, verbatim")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var raw []byte
			if len(args) == 2 && args[1] != "-" {
				raw = []byte(args[1])
			} else {
				b, err := io.ReadAll(e.io.in)
				if err != nil {
					return fmt.Errorf("reading the value from stdin: %w", err)
				}
				raw = b
				if asString {
					raw = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
				}
			}
			value := json.RawMessage(raw)
			if asString {
				b, _ := json.Marshal(string(raw))
				value = b
			} else if !json.Valid(raw) {
				return usagef("the value is not valid JSON; quote a string ('\"%s\"') or pass --string", clip(string(raw)))
			}
			var opts []client.Option
			if ttl.set {
				opts = append(opts, client.TTL(ttl.d))
			}
			if ifMatch.set {
				opts = append(opts, client.IfMatch(ifMatch.v))
			}
			if createOnly {
				opts = append(opts, client.IfNoneMatch())
			}
			if keepTTL {
				opts = append(opts, client.KeepTTL())
			}
			w, err := e.c.Put(ctx, args[0], value, opts...)
			if err != nil {
				return err
			}
			if e.json {
				created := w.Created
				return writeJSON(e.io.out, itemJSON{Key: w.Key, Version: w.Version, ExpiresAt: expiresJSON(w.ExpiresAt), Created: &created, Index: w.Index})
			}
			verb := "replaced"
			if w.Created {
				verb = "created"
			}
			fmt.Fprintf(e.io.out, "%s %s: version %d, %s\n", verb, w.Key, w.Version, describeExpiry(w.ExpiresAt))
			return nil
		},
	}
}

func delCommand() *command {
	var ifMatch versionFlag
	var prefix bool
	return &command{
		name: "del", args: "KEY | --prefix PREFIX", minArgs: 1, maxArgs: 1,
		summary: "delete KEY (a missing key is not an error), or every key starting with PREFIX",
		flags: func(fs *flag.FlagSet) {
			ifMatch = versionFlag{}
			fs.Var(&ifMatch, "if-match", "delete only if the key's current `VERSION` is this one (else exit 4)")
			fs.BoolVar(&prefix, "prefix", false, "the argument is a prefix: delete every matching key (in chunks; readers may see it partly done)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if prefix {
				if ifMatch.set {
					return usagef("--if-match does not apply to --prefix")
				}
				n, err := e.c.DeletePrefix(ctx, args[0])
				if err != nil {
					return err
				}
				if e.json {
					return writeJSON(e.io.out, map[string]any{"prefix": args[0], "deleted": n})
				}
				fmt.Fprintf(e.io.out, "deleted %d keys with prefix %q\n", n, args[0])
				return nil
			}
			var opts []client.Option
			if ifMatch.set {
				opts = append(opts, client.IfMatch(ifMatch.v))
			}
			deleted, err := e.c.Delete(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, map[string]any{"key": args[0], "deleted": deleted})
			}
			if deleted {
				fmt.Fprintf(e.io.out, "deleted %s\n", args[0])
			} else {
				fmt.Fprintf(e.io.out, "%s did not exist\n", args[0])
			}
			return nil
		},
	}
}

func lsCommand() *command {
	var prefix string
	var values, stale bool
	var limit, pageSize int
	return &command{
		name: "ls", args: "[--prefix PREFIX]", minArgs: 0, maxArgs: 0,
		summary: "list keys in byte order (text: one per line, with --values KEY<TAB>VALUE)",
		detail:  "-o json prints a JSON array of {key, version, expiresAt[, value]}.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&prefix, "prefix", "", "only keys starting with `PREFIX`")
			fs.BoolVar(&values, "values", false, "include the values")
			fs.IntVar(&limit, "limit", 0, "stop after this many keys (0: all)")
			fs.IntVar(&pageSize, "page-size", 0, "keys per request, 1-1000 (0: the server's default, 100)")
			fs.BoolVar(&stale, "stale", false, "read each page from the receiving node's own state")
		},
		run: func(ctx context.Context, e *env, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			if e.json {
				fmt.Fprint(e.io.out, "[")
			}
			n := 0
			for it, err := range e.c.List(ctx, client.ListQuery{Prefix: prefix, PageSize: pageSize, Values: values, Stale: stale}) {
				if err != nil {
					if e.json {
						fmt.Fprintln(e.io.out, "]")
					}
					return err
				}
				if limit > 0 && n == limit {
					break
				}
				switch {
				case e.json:
					if n > 0 {
						fmt.Fprint(e.io.out, ",")
					}
					b, _ := marshalJSON(itemJSON{Key: it.Key, Value: it.Value, Version: it.Version, ExpiresAt: expiresJSON(it.ExpiresAt)})
					fmt.Fprintf(e.io.out, "\n%s", b)
				case values:
					fmt.Fprintf(e.io.out, "%s\t%s\n", it.Key, it.Value)
				default:
					fmt.Fprintln(e.io.out, it.Key)
				}
				n++
			}
			if e.json {
				if n > 0 {
					fmt.Fprintln(e.io.out)
				}
				fmt.Fprintln(e.io.out, "]")
			}
			return nil
		},
	}
}

func ttlCommand() *command {
	var ifMatch versionFlag
	return &command{
		name: "ttl", args: "KEY SECONDS|DURATION|none", minArgs: 2, maxArgs: 2,
		summary: "refresh KEY's expiry to this long from now, or remove it with none (exit 3 if missing)",
		flags: func(fs *flag.FlagSet) {
			ifMatch = versionFlag{}
			fs.Var(&ifMatch, "if-match", "only if the key's current `VERSION` is this one (else exit 4)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var ttl time.Duration
			if args[1] != "none" {
				var err error
				if ttl, err = parseTTL(args[1]); err != nil {
					return err
				}
			}
			var opts []client.Option
			if ifMatch.set {
				opts = append(opts, client.IfMatch(ifMatch.v))
			}
			w, err := e.c.Patch(ctx, args[0], ttl, opts...)
			if err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, itemJSON{Key: w.Key, Version: w.Version, ExpiresAt: expiresJSON(w.ExpiresAt), Index: w.Index})
			}
			fmt.Fprintf(e.io.out, "%s: version %d, %s\n", w.Key, w.Version, describeExpiry(w.ExpiresAt))
			return nil
		},
	}
}

func incrCommand() *command {
	var by int64
	var ttl ttlFlag
	var ifMatch versionFlag
	return &command{
		name: "incr", args: "KEY", minArgs: 1, maxArgs: 1,
		summary: "add to the integer at KEY (a missing key starts at 0) and print the new value",
		flags: func(fs *flag.FlagSet) {
			ttl, ifMatch = ttlFlag{}, versionFlag{}
			fs.Int64Var(&by, "by", 1, "the increment `N`; may be negative")
			fs.Var(&ttl, "ttl", "`TTL`, applied only when the counter is created")
			fs.Var(&ifMatch, "if-match", "only if the key's current `VERSION` is this one (else exit 4)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var opts []client.Option
			if ttl.set {
				opts = append(opts, client.TTL(ttl.d))
			}
			if ifMatch.set {
				opts = append(opts, client.IfMatch(ifMatch.v))
			}
			r, err := e.c.Incr(ctx, args[0], by, opts...)
			if err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, itemJSON{Key: r.Key, Value: json.RawMessage(strconv.FormatInt(r.Value, 10)),
					Version: r.Version, ExpiresAt: expiresJSON(r.ExpiresAt), Index: r.Index})
			}
			fmt.Fprintln(e.io.out, r.Value)
			return nil
		},
	}
}

func txnCommand() *command {
	return &command{
		name: "txn", args: "[FILE|-]", minArgs: 0, maxArgs: 1,
		summary: "apply a transaction read as POST /kv/txn's JSON body from FILE or stdin (exit 4 if a check fails)",
		detail: `The body: {"checks": [{"key": "a", "version": 12}, {"key": "b", "exists": false}],
 "ops": [{"op": "put", "key": "a", "value": {"n": 1}, "ttlSeconds": 60}, {"op": "delete", "key": "b"},
         {"op": "incr", "key": "n", "by": 5}, {"op": "patch", "key": "s", "ttlSeconds": 1800}, {"op": "get", "key": "d"}]}
Every check holds and every op applies at one index, or nothing is written.`,
		run: func(ctx context.Context, e *env, args []string) error {
			var b []byte
			var err error
			if len(args) == 0 || args[0] == "-" {
				b, err = io.ReadAll(e.io.in)
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return usagef("reading the transaction: %v", err)
			}
			var t client.Txn
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&t); err != nil {
				return usagef("the transaction is not valid JSON of the POST /kv/txn body: %v", err)
			}
			res, err := e.c.Txn(ctx, t)
			if err != nil {
				checks, op := client.TxnFailure(err)
				for _, c := range checks {
					cur := "missing"
					if c.CurrentVersion != nil {
						cur = "version " + strconv.FormatUint(*c.CurrentVersion, 10)
					}
					err = fmt.Errorf("%w\n  check %d on %s failed: the key is at %s", err, c.Position, c.Key, cur)
				}
				if op != nil {
					err = fmt.Errorf("%w\n  op %d (%s %s) cannot apply: %s", err, op.Position, op.Op, op.Key, op.Reason)
				}
				return err
			}
			if e.json {
				return writeJSON(e.io.out, struct {
					Index   uint64               `json:"index"`
					Results []client.TxnOpResult `json:"results"`
				}{res.Index, res.Results})
			}
			fmt.Fprintf(e.io.out, "applied at index %d\n", res.Index)
			for _, r := range res.Results {
				exp := time.Time{}
				if r.ExpiresAt != nil {
					exp = *r.ExpiresAt
				}
				switch r.Op {
				case "get":
					if !r.Found {
						fmt.Fprintf(e.io.out, "get %s: missing\n", r.Key)
						continue
					}
					fmt.Fprintf(e.io.out, "get %s: %s (version %d, %s)\n", r.Key, r.Value, r.Version, describeExpiry(exp))
				case "delete":
					fmt.Fprintf(e.io.out, "delete %s: deleted %t\n", r.Key, r.Deleted)
				case "incr":
					fmt.Fprintf(e.io.out, "incr %s: %s (version %d, %s)\n", r.Key, r.Value, r.Version, describeExpiry(exp))
				default:
					fmt.Fprintf(e.io.out, "%s %s: version %d, %s\n", r.Op, r.Key, r.Version, describeExpiry(exp))
				}
			}
			return nil
		},
	}
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
