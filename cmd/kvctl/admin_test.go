package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterCommands(t *testing.T) {
	c := newCLI(t)
	if out := c.must("status"); !strings.Contains(out, "leader   n1") || !strings.Contains(out, "voters   n1=") {
		t.Fatalf("status: %s", out)
	}
	if out := c.must("status", "-o", "json"); !strings.Contains(out, `"leaderId":"n1"`) {
		t.Fatalf("status json: %s", out)
	}
	if out := c.must("version"); !strings.HasPrefix(out, "kvctl    devel (go") || !strings.Contains(out, "server   devel (go") || !strings.Contains(out, "(node n1, via ") {
		t.Fatalf("version: %q", out)
	}
	if out := c.must("join", "n4", "127.0.0.1:9084", "127.0.0.1:8084"); out != "joined n4 (peer 127.0.0.1:9084)\n" {
		t.Fatalf("join: %q", out)
	}
	out := c.must("nodes")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "n1") || !strings.Contains(lines[4], "127.0.0.1:9084") {
		t.Fatalf("nodes:\n%s", out)
	}
	if out := c.must("nodes", "-o", "json"); !strings.Contains(out, `"suffrage":"voter"`) {
		t.Fatalf("nodes json: %s", out)
	}
	if out := c.must("transfer", "n2"); out != "leadership transferred to n2\n" || c.fake.Leader() != "n2" {
		t.Fatalf("transfer: %q", out)
	}
	if out := c.must("transfer"); !strings.HasPrefix(out, "leadership transferred to n") || c.fake.Leader() == "n2" {
		t.Fatalf("transfer to anyone: %q", out)
	}
	if out := c.must("remove", "n4"); out != "removed n4\n" {
		t.Fatalf("remove: %q", out)
	}
	if o := c.run("", "remove", "n4"); o.code != 3 {
		t.Fatalf("remove unknown: %+v", o)
	}
	// Listing nodes is a read (as on the real server); changing them is not.
	if o := c.run("", "nodes", "--api-key", "read-key"); o.code != 0 {
		t.Fatalf("nodes with a read key: %+v", o)
	}
	if o := c.run("", "remove", "n3", "--api-key", "read-key"); o.code != 5 {
		t.Fatalf("remove with a read key: %+v", o)
	}
}

func TestSnapshotCommands(t *testing.T) {
	c := newCLI(t)
	c.must("put", "a", "1")
	c.must("put", "b", `{"x":2}`)
	file := filepath.Join(t.TempDir(), "backup.snap")

	if out := c.must("snapshot", "save", file); !strings.HasPrefix(out, "saved ") {
		t.Fatalf("save: %q", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v", fi, err)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}

	c.must("del", "a")
	c.must("put", "c", "3")
	if out := c.must("snapshot", "restore", file); !strings.Contains(out, "restored") {
		t.Fatalf("restore: %q", out)
	}
	if out := c.must("ls"); out != "a\nb\n" {
		t.Fatalf("after restore: %q", out)
	}

	// A corrupt file is refused and nothing changes.
	b, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, b[:len(b)/2], 0o600)
	if o := c.run("", "snapshot", "restore", bad); o.code != 1 || !strings.Contains(o.err, "invalid_snapshot") {
		t.Fatalf("corrupt restore: %+v", o)
	}
	if out := c.must("ls"); out != "a\nb\n" {
		t.Fatalf("after the refused restore: %q", out)
	}

	// Stdout and stdin.
	snap := c.must("snapshot", "save", "-")
	c.must("del", "a")
	if o := c.run(snap, "snapshot", "restore", "-"); o.code != 0 {
		t.Fatalf("restore from stdin: %+v", o)
	}
	c.must("get", "a")

	if o := c.run("", "snapshot", "frobnicate", file); o.code != 2 {
		t.Fatalf("bad subcommand: %+v", o)
	}
	if o := c.run("", "snapshot", "save", filepath.Join(t.TempDir(), "no", "such", "dir")); o.code != 1 {
		t.Fatalf("unwritable file: %+v", o)
	}
}
