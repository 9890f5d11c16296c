package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/client/kvfake"
)

// cli runs kvctl against fake endpoints.
type cli struct {
	t    *testing.T
	fake *kvfake.Server
	env  map[string]string
}

func newCLI(t *testing.T) *cli {
	fake := kvfake.New()
	fake.AddAPIKey("admin-key", "admin")
	fake.AddAPIKey("read-key", "read")
	srv := httptest.NewServer(fake.Handler(nil))
	t.Cleanup(srv.Close)
	return &cli{t: t, fake: fake, env: map[string]string{"KV_ENDPOINTS": srv.URL, "KV_API_KEY": "admin-key"}}
}

type outcome struct {
	code     int
	out, err string
}

func (c *cli) run(stdin string, args ...string) outcome {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb},
		func(k string) string { return c.env[k] })
	return outcome{code, out.String(), errb.String()}
}

// must runs args and fails the test unless it exits 0.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	o := c.run("", args...)
	if o.code != 0 {
		c.t.Fatalf("kvctl %q: exit %d, stderr %s", args, o.code, o.err)
	}
	return o.out
}

func TestItemCommands(t *testing.T) {
	c := newCLI(t)
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		out     string // exact stdout, unless contains is set
		contain string // substring of stdout
		errHas  string // substring of stderr
	}{
		{name: "put creates", args: []string{"put", "session/u1", `{"cart":[1]}`, "--ttl", "1h"}, contain: "created session/u1: version 1, expires "},
		{name: "get prints the value", args: []string{"get", "session/u1"}, out: "{\"cart\":[1]}\n"},
		{name: "put from stdin", stdin: `{"b": "<&>"}` + "\n", args: []string{"put", "k2"}, contain: "created k2: version 2, never expires"},
		{name: "get keeps the JSON as stored", args: []string{"get", "k2"}, out: "{\"b\":\"<&>\"}\n"},
		{name: "put --string", stdin: "hello world\n", args: []string{"put", "greeting", "-", "--string"}, contain: "created greeting"},
		{name: "get the string", args: []string{"get", "greeting"}, out: "\"hello world\"\n"},
		{name: "negative number after --", args: []string{"put", "n", "--", "-5"}, contain: "created n"},
		{name: "invalid JSON is a usage error", args: []string{"put", "k", "not json"}, code: 2, errHas: "not valid JSON"},
		{name: "get missing", args: []string{"get", "nope"}, code: 3, errHas: "404 not_found"},
		{name: "if-match mismatch", args: []string{"put", "k2", "1", "--if-match", "1"}, code: 4, errHas: "version_mismatch"},
		{name: "if-match match", args: []string{"put", "k2", "3", "--if-match", `"2"`, "--keep-ttl"}, contain: "replaced k2: version 5"},
		{name: "create-only on a live key", args: []string{"put", "k2", "1", "--create-only"}, code: 4, errHas: "already_exists"},
		{name: "ttl refresh", args: []string{"ttl", "k2", "90s"}, contain: "k2: version 6, expires "},
		{name: "ttl none", args: []string{"ttl", "k2", "none"}, contain: "k2: version 7, never expires"},
		{name: "ttl missing key", args: []string{"ttl", "nope", "10"}, code: 3},
		{name: "ttl bad value", args: []string{"ttl", "k2", "soon"}, code: 2},
		{name: "incr", args: []string{"incr", "ctr"}, out: "1\n"},
		{name: "incr by", args: []string{"incr", "ctr", "--by", "-11"}, out: "-10\n"},
		{name: "incr a string", args: []string{"incr", "greeting"}, code: 1, errHas: "not_an_integer"},
		{name: "del", args: []string{"del", "n"}, out: "deleted n\n"},
		{name: "del again", args: []string{"del", "n"}, out: "n did not exist\n"},
		{name: "del if-match on a missing key", args: []string{"del", "n", "--if-match", "3"}, code: 4},
		{name: "ls", args: []string{"ls"}, out: "ctr\ngreeting\nk2\nsession/u1\n"},
		{name: "ls prefix values", args: []string{"ls", "--prefix", "session/", "--values", "--page-size", "1"}, out: "session/u1\t{\"cart\":[1]}\n"},
		{name: "ls limit", args: []string{"ls", "--limit", "2", "--page-size", "1"}, out: "ctr\ngreeting\n"},
		{name: "del prefix", args: []string{"del", "--prefix", "session/"}, out: "deleted 1 keys with prefix \"session/\"\n"},
		{name: "missing argument", args: []string{"get"}, code: 2, errHas: "usage: kvctl get KEY"},
		{name: "unknown flag", args: []string{"get", "k", "--nope"}, code: 2},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2},
		{name: "bad output", args: []string{"-o", "yaml", "get", "k2"}, code: 2},
	}
	for _, tt := range tests {
		o := c.run(tt.stdin, tt.args...)
		switch {
		case o.code != tt.code:
			t.Errorf("%s: exit %d, want %d (stderr %q)", tt.name, o.code, tt.code, o.err)
		case tt.contain == "" && tt.code == 0 && o.out != tt.out:
			t.Errorf("%s: stdout %q, want %q", tt.name, o.out, tt.out)
		case tt.contain != "" && !strings.Contains(o.out, tt.contain):
			t.Errorf("%s: stdout %q lacks %q", tt.name, o.out, tt.contain)
		case !strings.Contains(o.err, tt.errHas):
			t.Errorf("%s: stderr %q lacks %q", tt.name, o.err, tt.errHas)
		}
	}
}

func TestJSONOutput(t *testing.T) {
	c := newCLI(t)
	var put struct {
		Key       string  `json:"key"`
		Version   uint64  `json:"version"`
		ExpiresAt *string `json:"expiresAt"`
		Created   bool    `json:"created"`
		Index     uint64  `json:"index"`
	}
	if err := json.Unmarshal([]byte(c.must("put", "k", "[1,2]", "-o", "json", "--ttl", "60")), &put); err != nil {
		t.Fatal(err)
	}
	if put.Key != "k" || put.Version != 1 || !put.Created || put.ExpiresAt == nil || put.Index != 1 {
		t.Fatalf("put: %+v", put)
	}

	var get map[string]json.RawMessage
	if err := json.Unmarshal([]byte(c.must("-o", "json", "get", "k")), &get); err != nil {
		t.Fatal(err)
	}
	if string(get["value"]) != "[1,2]" || string(get["version"]) != "1" || get["ttlRemainingMs"] == nil {
		t.Fatalf("get: %s", get)
	}

	c.must("put", "j", `"x"`)
	var items []map[string]any
	if err := json.Unmarshal([]byte(c.must("ls", "-o", "json", "--values")), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0]["key"] != "j" || items[0]["value"] != "x" || items[1]["expiresAt"] == nil {
		t.Fatalf("ls: %v", items)
	}
	if out := c.must("ls", "-o", "json", "--prefix", "zzz"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty ls: %q", out)
	}

	// Errors are JSON on stderr, with the exit code and the current version of a 412.
	o := c.run("", "put", "k", "3", "--if-match", "99", "-o", "json")
	var e struct {
		Error struct {
			Code           string  `json:"code"`
			Exit           int     `json:"exit"`
			Status         int     `json:"status"`
			CurrentVersion *uint64 `json:"currentVersion"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(o.err), &e); err != nil || o.code != 4 {
		t.Fatalf("exit %d, stderr %q: %v", o.code, o.err, err)
	}
	if e.Error.Code != "version_mismatch" || e.Error.Exit != 4 || e.Error.Status != 412 || e.Error.CurrentVersion == nil || *e.Error.CurrentVersion != 1 {
		t.Fatalf("error JSON %+v", e.Error)
	}

	if out := c.must("incr", "ctr", "--by", "5", "-o", "json"); !strings.Contains(out, `"value":5`) {
		t.Fatalf("incr: %s", out)
	}
}

func TestAuthAndEnvironment(t *testing.T) {
	c := newCLI(t)
	c.env["KV_API_KEY"] = "wrong"
	if o := c.run("", "get", "k"); o.code != 5 || !strings.Contains(o.err, "unauthorized") {
		t.Fatalf("wrong key: %+v", o)
	}
	if o := c.run("", "get", "k", "--api-key", "read-key"); o.code != 3 {
		t.Fatalf("--api-key overrides the environment: %+v", o)
	}
	if o := c.run("", "put", "k", "1", "--api-key", "read-key"); o.code != 5 || !strings.Contains(o.err, "forbidden") {
		t.Fatalf("read key writing: %+v", o)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("admin-key\n"), 0o600)
	c.env["KV_API_KEY"] = ""
	c.env["KV_API_KEY_FILE"] = keyFile
	c.must("put", "k", "1")

	// Several endpoints, the first one down: the command still succeeds.
	down := httptest.NewServer(nil)
	down.Close()
	c.env["KV_ENDPOINTS"] = down.URL + ", " + c.env["KV_ENDPOINTS"]
	if out := c.must("get", "k"); out != "1\n" {
		t.Fatalf("get through the second endpoint: %q", out)
	}
	if o := c.run("", "get", "k", "--endpoints", down.URL, "--timeout", "200ms"); o.code != 6 {
		t.Fatalf("no reachable node: %+v", o)
	}
}

func TestHelp(t *testing.T) {
	c := newCLI(t)
	o := c.run("", "--help")
	if o.code != 0 || !strings.Contains(o.out, "Exit codes:") || !strings.Contains(o.out, "snapshot") {
		t.Fatalf("--help: %+v", o)
	}
	if o := c.run(""); o.code != 2 || !strings.Contains(o.err, "Commands:") {
		t.Fatalf("no command: %+v", o)
	}
	for _, cmd := range commands {
		if o := c.run("", "help", cmd.name); o.code != 0 || !strings.Contains(o.out, "Usage: kvctl "+cmd.name) {
			t.Errorf("help %s: %+v", cmd.name, o)
		}
		if o := c.run("", cmd.name, "--help"); o.code != 0 {
			t.Errorf("%s --help: %+v", cmd.name, o)
		}
	}
}

func TestTxnCommand(t *testing.T) {
	c := newCLI(t)
	body := `{"checks": [{"key": "session/abc", "exists": false}],
	  "ops": [{"op": "put", "key": "session/abc", "value": {"user": 42}, "ttlSeconds": 1800},
	          {"op": "put", "key": "user/42/session", "value": "abc", "ttlSeconds": 1800},
	          {"op": "get", "key": "user/42/name"}]}`
	o := c.run(body, "txn")
	if o.code != 0 || !strings.Contains(o.out, "applied at index 1") || !strings.Contains(o.out, "put session/abc: version 1, expires") || !strings.Contains(o.out, "get user/42/name: missing") {
		t.Fatalf("txn from stdin: exit %d, out %q, err %q", o.code, o.out, o.err)
	}
	file := filepath.Join(t.TempDir(), "login.json")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	o = c.run("", "txn", file)
	if o.code != 4 || !strings.Contains(o.err, "txn_check_failed") || !strings.Contains(o.err, "check 0 on session/abc failed: the key is at version 1") {
		t.Fatalf("the same login again: exit %d, err %q", o.code, o.err)
	}
	o = c.run(`{"ops": [{"op": "patch", "key": "nope", "ttlSeconds": 5}]}`, "txn", "-", "-o", "json")
	if o.code != 1 || !strings.Contains(o.err, "txn_op_failed") {
		t.Fatalf("patch of a missing key: exit %d, err %q", o.code, o.err)
	}
	if o := c.run("", "txn", file+"x"); o.code != 2 || !strings.Contains(o.err, "no such file") {
		t.Fatalf("a missing file: exit %d, err %q", o.code, o.err)
	}
	if o := c.run(`{"ops": [{"op": "put", "key": "a", "value": 1, "ttl": 5}]}`, "txn"); o.code != 2 || !strings.Contains(o.err, `unknown field "ttl"`) {
		t.Fatalf("an unknown field: exit %d, err %q", o.code, o.err)
	}
}
