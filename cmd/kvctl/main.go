// Command kvctl is the command-line client of quorumkv: it reads and writes
// keys, lists and counts, shows the cluster and its members, changes
// membership and leadership, and saves and restores snapshots, through the
// client package. `kvctl --help` documents the commands, flags, environment
// and exit codes; see also the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Exit codes, documented in the usage text and the README.
const (
	exitOK           = 0
	exitError        = 1 // any other failure
	exitUsage        = 2 // bad command line
	exitNotFound     = 3 // no such key (or node)
	exitPrecondition = 4 // --if-match or --create-only failed
	exitAuth         = 5 // missing, wrong or insufficient API key
	exitUnavailable  = 6 // no node answered usefully before the retries or --timeout ran out
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}

// stdio is where a run reads and writes; tests pass buffers.
type stdio struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	endpoints  string
	apiKey     string
	apiKeyFile string
	output     string
	timeout    time.Duration
}

// defaultEndpoints are those of scripts/cluster.sh's local cluster.
const defaultEndpoints = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"

const defaultTimeout = 30 * time.Second

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoints, "endpoints", g.endpoints, "comma-separated node URLs (env KV_ENDPOINTS)")
	fs.StringVar(&g.apiKey, "api-key", g.apiKey, "API key (env KV_API_KEY)")
	fs.StringVar(&g.apiKeyFile, "api-key-file", g.apiKeyFile, "read the API key from this file (env KV_API_KEY_FILE)")
	fs.StringVar(&g.output, "o", g.output, "output: text or json")
	fs.StringVar(&g.output, "output", g.output, "output: text or json")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "deadline for the whole command, retries included (0: none)")
}

// usageError is a bad command line: exit 2 with a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// env is one command's context: the parsed globals, the client and stdio.
type env struct {
	g       globals
	c       *client.Client
	io      stdio
	json    bool
	command *command
}

// run executes one kvctl invocation and returns its exit code.
func run(ctx context.Context, args []string, sio stdio, getenv func(string) string) int {
	g := globals{
		endpoints:  firstNonEmpty(getenv("KV_ENDPOINTS"), defaultEndpoints),
		apiKey:     getenv("KV_API_KEY"),
		apiKeyFile: getenv("KV_API_KEY_FILE"),
		output:     "text",
		timeout:    defaultTimeout,
	}
	top := flag.NewFlagSet("kvctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(sio.out)
			return exitOK
		}
		return fail(sio, false, usagef("%v", err))
	}
	rest := top.Args()
	if len(rest) == 0 {
		printUsage(sio.err)
		return exitUsage
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) > 0 {
			if cmd := findCommand(rest[0]); cmd != nil {
				printCommandUsage(sio.out, cmd)
				return exitOK
			}
		}
		printUsage(sio.out)
		return exitOK
	}
	cmd := findCommand(name)
	if cmd == nil {
		return fail(sio, false, usagef("unknown command %q", name))
	}

	fs := flag.NewFlagSet("kvctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	timeoutSet := false
	top.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(sio.out, cmd)
			return exitOK
		}
		return fail(sio, g.output == "json", usagef("%s: %v", cmd.name, err))
	}
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if g.output != "text" && g.output != "json" {
		return fail(sio, false, usagef("-o must be text or json, not %q", g.output))
	}
	jsonOut := g.output == "json"
	if len(pos) < cmd.minArgs || (cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs) {
		return fail(sio, jsonOut, usagef("usage: kvctl %s %s", cmd.name, cmd.args))
	}

	c, err := newClient(g)
	if err != nil {
		return fail(sio, jsonOut, err)
	}
	timeout := g.timeout
	if cmd.streaming && !timeoutSet {
		timeout = 0 // snapshots of a large dataset take as long as they take
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	e := &env{g: g, c: c, io: sio, json: jsonOut, command: cmd}
	if err := cmd.run(ctx, e, pos); err != nil {
		return fail(sio, jsonOut, err)
	}
	return exitOK
}

// parseInterleaved parses flags anywhere among the positional arguments
// (kvctl put KEY VALUE --ttl 60). Everything after "--" is positional, so a
// value starting with "-" is written kvctl put KEY -- -5.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newClient(g globals) (*client.Client, error) {
	key := g.apiKey
	if key == "" && g.apiKeyFile != "" {
		b, err := os.ReadFile(g.apiKeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading the API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	var eps []string
	for _, e := range strings.Split(g.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	c, err := client.New(client.Config{Endpoints: eps, APIKey: key, UserAgent: "kvctl"})
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidOption):
		return exitUsage
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrVersionMismatch), errors.Is(err, client.ErrAlreadyExists), errors.Is(err, client.ErrTxnCheckFailed):
		return exitPrecondition
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		return exitAuth
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable
	}
	return exitError
}

// fail reports err on stderr (as {"error": {...}} with -o json) and returns
// its exit code.
func fail(sio stdio, jsonOut bool, err error) int {
	code := exitCode(err)
	if !jsonOut {
		fmt.Fprintf(sio.err, "kvctl: %v\n", err)
		if code == exitUsage {
			fmt.Fprintln(sio.err, "run kvctl --help for usage")
		}
		return code
	}
	out := errorJSON{Code: "error", Message: err.Error(), Exit: code}
	var ae *client.APIError
	if errors.As(err, &ae) {
		out.Code, out.Status, out.Endpoint = ae.Code, ae.Status, ae.Endpoint
		if v, ok := client.CurrentVersion(err); ok {
			out.CurrentVersion = &v // 0: the key was missing or expired
		}
	} else if code == exitUsage {
		out.Code = "usage"
	}
	writeJSON(sio.err, struct {
		Error errorJSON `json:"error"`
	}{out})
	return code
}

type errorJSON struct {
	Code           string  `json:"code"`
	Message        string  `json:"message"`
	Status         int     `json:"status,omitempty"`
	Endpoint       string  `json:"endpoint,omitempty"`
	CurrentVersion *uint64 `json:"currentVersion,omitempty"` // 412 only; 0 when the key is missing
	Exit           int     `json:"exit"`
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// newCommandFlagSet is a flag set with c's own flags only (for its usage).
func newCommandFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("kvctl "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}
