package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// marshalJSON renders v without HTML escaping (values are shown as stored).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeJSON prints v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

const usageHead = `kvctl is the command-line client of quorumkv.

Usage: kvctl [flags] COMMAND [ARGS] [flags]

Commands:
`

const usageTail = `
Flags (anywhere on the line):
  --endpoints URLS     comma-separated node URLs; env KV_ENDPOINTS (default
                       127.0.0.1:8081,...:8082,...:8083, the local cluster; a URL without
                       a scheme is http://, or https:// when a TLS flag is given)
  --api-key KEY        API key; env KV_API_KEY
  --api-key-file FILE  read the API key from FILE; env KV_API_KEY_FILE
  -o, --output FORMAT  text (default, for people) or json (one JSON document, for scripts;
                       errors too, on stderr: {"error": {"code", "message", "exit", ...}})
  --timeout DURATION   deadline for the whole command, retries included (default 30s;
                       none for snapshot unless given)

TLS (HTTPS endpoints, e.g. scripts/cluster.sh start --tls):
  --cacert FILE        PEM CA certificate(s) that sign the nodes' certificates, instead of
                       the system's roots; env KV_CACERT
  --cert FILE          PEM client certificate, for nodes that ask for one; env KV_CERT
  --key FILE           PEM private key of --cert; env KV_KEY
  --tls-server-name N  name the nodes' certificates carry, when not the endpoint's host;
                       env KV_TLS_SERVER_NAME
  --insecure-skip-tls-verify
                       accept any server certificate (encrypted, not authenticated: anyone
                       on the path can read the API key); env KV_INSECURE_SKIP_TLS_VERIFY=true

Shell completion: kvctl completion bash|zsh|fish prints a script to source, e.g.
  source <(kvctl completion bash)     # in ~/.bashrc

A request that fails on one node in a retryable way (no leader, node down) is retried on
the next endpoint with backoff; every write carries an idempotency key, so a retried
write is applied at most once.

Exit codes:
  0  success
  1  error (anything not listed below)
  2  usage: bad command line, flag or value
  3  not found: no such key (get, ttl) or node (remove)
  4  precondition failed: --if-match or --create-only did not hold; nothing was written
  5  unauthorized or forbidden: missing, wrong or insufficient API key
  6  unavailable: no node could serve the request before the retries or --timeout ran out

Run kvctl help COMMAND for a command's flags.
`

func printUsage(w io.Writer) {
	fmt.Fprint(w, usageHead)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, usageTail)
}

func printCommandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: kvctl %s %s\n\n%s.\n", c.name, c.args, upperFirst(c.summary))
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", c.detail)
	}
	fs := newCommandFlagSet(c)
	var buf strings.Builder
	fs.SetOutput(&buf)
	fs.PrintDefaults()
	if buf.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", buf.String())
	}
	fmt.Fprintln(w, "\nGlobal flags, environment and exit codes: kvctl --help")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
