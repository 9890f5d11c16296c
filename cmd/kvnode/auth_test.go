package main

import (
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
