package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/client/kvfake"
)

// TestMain lets the test binary act as kvctl (for the completion scripts,
// which call kvctl __complete) when KVCTL_TEST_AS_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("KVCTL_TEST_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestTLSFlagsAndEnvironment(t *testing.T) {
	fake := kvfake.New()
	fake.AddAPIKey("admin-key", "admin")
	srv := httptest.NewTLSServer(fake.Handler(nil))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	hostPort := strings.TrimPrefix(srv.URL, "https://")

	c := &cli{t: t, fake: fake, env: map[string]string{"KV_ENDPOINTS": srv.URL, "KV_API_KEY": "admin-key"}}
	if o := c.run("", "put", "a", "1"); o.code != 1 || !strings.Contains(o.err, "certificate") {
		t.Fatalf("without the CA: %+v", o)
	}
	c.must("put", "a", "1", "--cacert", ca)
	// A scheme-less endpoint is https:// once a TLS flag is given.
	if out := c.must("get", "a", "--cacert", ca, "--endpoints", hostPort); strings.TrimSpace(out) != "1" {
		t.Fatalf("get: %q", out)
	}
	c.must("get", "a", "--insecure-skip-tls-verify")
	c.must("get", "a", "--cacert", ca, "--tls-server-name", "example.com")
	if o := c.run("", "get", "a", "--cacert", ca, "--tls-server-name", "wrong.example"); o.code != 1 {
		t.Fatalf("wrong server name: %+v", o)
	}
	if o := c.run("", "get", "a", "--cert", ca); o.code != 2 || !strings.Contains(o.err, "both") {
		t.Fatalf("--cert without --key: %+v", o)
	}
	if o := c.run("", "get", "a", "--cacert", filepath.Join(t.TempDir(), "missing.pem")); o.code != 1 || !strings.Contains(o.err, "missing.pem") {
		t.Fatalf("missing CA file: %+v", o)
	}
	c.env["KV_CACERT"] = ca
	c.must("get", "a")
	delete(c.env, "KV_CACERT")
	c.env["KV_INSECURE_SKIP_TLS_VERIFY"] = "true"
	c.must("get", "a")
	c.env["KV_INSECURE_SKIP_TLS_VERIFY"] = "sure"
	if o := c.run("", "get", "a"); o.code != 2 {
		t.Fatalf("malformed KV_INSECURE_SKIP_TLS_VERIFY: %+v", o)
	}
}

func TestSnapshotProgressOnlyOnATerminal(t *testing.T) {
	old := progressEvery
	progressEvery = 0
	t.Cleanup(func() { progressEvery = old })
	c := newCLI(t)
	for i := range 20 {
		c.must("put", "k"+strings.Repeat("x", i), strings.Repeat("1", 100))
	}
	file := filepath.Join(t.TempDir(), "s.snap")
	for _, tty := range []bool{false, true} {
		for _, args := range [][]string{{"snapshot", "save", file}, {"snapshot", "restore", file}} {
			var out, errb bytes.Buffer
			code := run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb, errTerminal: tty},
				func(k string) string { return c.env[k] })
			if code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, errb.String())
			}
			progress := strings.Contains(errb.String(), "iB/s)") || strings.Contains(errb.String(), " B/s)")
			if tty != progress {
				t.Fatalf("%v on a terminal=%v: stderr %q", args, tty, errb.String())
			}
		}
	}
}

// TestCompletionScripts loads the bash script into bash and completes a few
// command lines through it; zsh and fish scripts are syntax-checked when
// those shells are installed.
func TestCompletionScripts(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	wrapper := "#!/bin/sh\nKVCTL_TEST_AS_MAIN=1 exec " + exe + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "kvctl"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	var script bytes.Buffer
	if code := run(context.Background(), []string{"completion", "bash"}, stdio{out: &script, err: os.Stderr}, func(string) string { return "" }); code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	scriptFile := filepath.Join(bin, "kvctl.bash")
	os.WriteFile(scriptFile, script.Bytes(), 0o644)
	os.WriteFile(filepath.Join(bin, "backup.snap"), nil, 0o644)

	for _, tc := range []struct{ line, want string }{
		{"kvctl sn", "snapshot"},
		{"kvctl snapshot ", "restore save verify"},
		{"kvctl snapshot ve", "verify"},
		{"kvctl get --st", "--stale"},
		{"kvctl --endpoints http://x:1 tr", "transfer"},
		{"kvctl completion f", "fish"},
		{"kvctl --cacert " + bin + "/kvctl.b", bin + "/kvctl.bash"},
		{"kvctl snapshot restore " + bin + "/back", bin + "/backup.snap"},
	} {
		// COMP_WORDS as bash splits the line; an empty last word when the
		// line ends with a space.
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog := "source " + scriptFile + " && complete -p kvctl >/dev/null && COMP_WORDS=(" + strings.Join(quoted, " ") + ") && COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + " && _kvctl && echo \"${COMPREPLY[*]}\""
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("completing %q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script is not syntax-checked", sh)
			continue
		}
		var s bytes.Buffer
		run(context.Background(), []string{"completion", sh}, stdio{out: &s, err: os.Stderr}, func(string) string { return "" })
		f := filepath.Join(bin, "kvctl."+sh)
		os.WriteFile(f, s.Bytes(), 0o644)
		if out, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if o := (&cli{t: t, env: map[string]string{}}).run("", "completion", "tcsh"); o.code != 2 {
		t.Fatalf("unknown shell: %+v", o)
	}
}
