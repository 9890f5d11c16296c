package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScopedKeysFileAndReload(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	write := func(content string) {
		if err := os.WriteFile(keysFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("web:write:web-secret-0123456789\nro:read:ro-secret-0123456789\n")
	logs := &lockedBuffer{}
	n, _ := startTestNode(t, logs, "--data-dir", filepath.Join(dir, "data"), "--api-keys-file", keysFile)
	logger := n.log
	if _, err := os.Stat(filepath.Join(dir, "data", apiKeyFileName)); err == nil {
		t.Fatal("a key was generated although a keys file is configured")
	}
	call := func(method, path, secret string) int {
		req, _ := http.NewRequest(method, "http://"+n.httpAddr+path, strings.NewReader(`{"value":1}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call("PUT", "/kv/items/a", "web-secret-0123456789"); code != 201 {
		t.Fatalf("writer PUT: %d", code)
	}
	if code := call("PUT", "/kv/items/a", "ro-secret-0123456789"); code != 403 {
		t.Fatalf("reader PUT: %d, want 403", code)
	}
	if code := call("GET", "/kv/items/a", "ro-secret-0123456789"); code != 200 {
		t.Fatalf("reader GET: %d", code)
	}

	write("web:write:web-secret-rotated-0123\n")
	n.creds.reload(logger)
	if code := call("GET", "/kv/items/a", "web-secret-0123456789"); code != 401 {
		t.Fatalf("old secret after reload: %d, want 401", code)
	}
	if code := call("GET", "/kv/items/a", "web-secret-rotated-0123"); code != 200 {
		t.Fatalf("rotated secret: %d", code)
	}
	write("this is not a keys file")
	n.creds.reload(logger)
	if code := call("GET", "/kv/items/a", "web-secret-rotated-0123"); code != 200 {
		t.Fatalf("a broken reload must keep the keys: %d", code)
	}
	if !strings.Contains(logs.b.String(), "API keys NOT reloaded") {
		t.Fatal("broken reload not logged")
	}
}

// TestReloadRevokesTheAPIKeyFlag: with --api-keys-file, the --api-key key
// works until the first reload, which leaves the keys file as the only
// source of keys.
func TestReloadRevokesTheAPIKeyFlag(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keysFile, []byte("ops:admin:ops-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	n, _ := startTestNode(t, logs, "--data-dir", filepath.Join(dir, "data"), "--api-keys-file", keysFile, "--api-key", "flag-secret-0123456789")
	status := func(secret string) int {
		code, _ := doAs(t, secret, "GET", "http://"+n.httpAddr+"/cluster/status", "")
		return code
	}
	if a, b := status("flag-secret-0123456789"), status("ops-secret-0123456789"); a != 200 || b != 200 {
		t.Fatalf("before reload: --api-key %d, keys file %d; want 200, 200", a, b)
	}
	n.creds.reload(n.log)
	if a, b := status("flag-secret-0123456789"), status("ops-secret-0123456789"); a != 401 || b != 200 {
		t.Fatalf("after reload: --api-key %d, keys file %d; want 401, 200", a, b)
	}
	if logs.count("no longer accepted") != 1 {
		t.Fatal("the revocation was not logged")
	}
	n.creds.reload(n.log)
	if status("flag-secret-0123456789") != 401 {
		t.Fatal("a second reload brought the revoked key back")
	}
}

// TestReloadRereadsTheAdminKeyFile: without a keys file, SIGHUP reads
// --api-key-file again, so replacing the file rotates (and revokes) the key.
func TestReloadRereadsTheAdminKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("first-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, _ := startTestNode(t, nil, "--data-dir", filepath.Join(dir, "data"), "--api-key-file", keyFile)
	status := func(secret string) int {
		code, _ := doAs(t, secret, "GET", "http://"+n.httpAddr+"/cluster/status", "")
		return code
	}
	if status("first-secret-0123456789") != 200 {
		t.Fatal("the key file's key is refused")
	}
	if err := os.WriteFile(keyFile, []byte("second-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.creds.reload(n.log)
	if a, b := status("first-secret-0123456789"), status("second-secret-0123456789"); a != 401 || b != 200 {
		t.Fatalf("after reload: old %d, new %d; want 401, 200", a, b)
	}
	if err := os.WriteFile(keyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n.creds.reload(n.log)
	if status("second-secret-0123456789") != 200 {
		t.Fatal("an empty key file must keep the key in force")
	}
}

// TestGeneratedKeyIsNeverPrinted: a generated key goes to a 0600 file whose
// path is printed; the key appears neither on stderr nor in the logs.
func TestGeneratedKeyIsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	var stderr, logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	c, err := loadCredentials(options{dataDir: dir}, logger, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, apiKeyFileName)
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != c.apiKey || len(c.apiKey) != 64 {
		t.Fatalf("key file %q (%v) does not hold the key in use", b, err)
	}
	if strings.Contains(stderr.String(), c.apiKey) || strings.Contains(logs.String(), c.apiKey) {
		t.Fatalf("the generated key was printed:\nstderr: %s\nlogs: %s", stderr.String(), logs.String())
	}
	if !strings.Contains(stderr.String(), path) || !strings.Contains(logs.String(), path) {
		t.Fatalf("the key file's path was not printed:\nstderr: %s\nlogs: %s", stderr.String(), logs.String())
	}
}

// TestAPIKeyOnTheCommandLineIsWarnedAbout: a key in argv is visible to every
// local user; the environment variable is not.
func TestAPIKeyOnTheCommandLineIsWarnedAbout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		warn bool
	}{
		{[]string{"--api-key", "argv-secret-0123456789"}, nil, true},
		{nil, map[string]string{"KV_API_KEY": "env-secret-0123456789"}, false},
	} {
		o, err := parseFlags(append([]string{"--data-dir", t.TempDir()}, tc.args...), func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		if _, err := loadCredentials(o, slog.New(slog.NewTextHandler(&logs, nil)), io.Discard); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "visible to every local user"); got != tc.warn {
			t.Errorf("args %v env %v: warned %v, want %v\n%s", tc.args, tc.env, got, tc.warn, logs.String())
		}
		if strings.Contains(logs.String(), "secret-0123456789") {
			t.Errorf("the key was logged: %s", logs.String())
		}
	}
}
