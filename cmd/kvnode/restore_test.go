package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRestoreCommandSeedsDataDir: backup over HTTP, wipe, `kvnode restore`
// (corrupt files refused with the dir untouched), start, identical state.
func TestRestoreCommandSeedsDataDir(t *testing.T) {
	src, stop := startTestNode(t, nil, "--api-key", "secret", "--data-dir", t.TempDir(), "--peer-addr", freeAddr(t))
	base := "http://" + src.httpAddr
	for _, k := range []string{"a", "b", "c"} {
		if code, body := do(t, "PUT", base+"/kv/items/"+k, `{"value":"`+k+`","ttlSeconds":3600}`); code != 201 {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	code, file := do(t, "GET", base+"/admin/snapshot", "")
	if code != 200 {
		t.Fatalf("GET /admin/snapshot: %d %s", code, file)
	}
	waitUntil(t, 10*time.Second, "the source cluster's id", func() bool { return src.store.ClusterID() != "" })
	wantHash, srcID := src.store.DataHash(), src.store.ClusterID()
	if srcID == "" {
		t.Fatal("the source cluster has no cluster id")
	}
	stop()

	dir := filepath.Join(t.TempDir(), "node")
	good := filepath.Join(t.TempDir(), "backup.qkvbak")
	os.WriteFile(good, file, 0o600)
	peer := freeAddr(t)
	for name, bad := range map[string][]byte{
		"truncated": file[:len(file)-10],
		"corrupt":   append(append(bytes.Clone(file[:60]), file[60]^0x80), file[61:]...),
		"garbage":   []byte("hello"),
	} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, bad, 0o600)
		var stderr bytes.Buffer
		if rc := runRestore([]string{"--from", p, "--data-dir", dir, "--peer-addr", peer}, func(string) string { return "" }, io.Discard, &stderr); rc != 1 {
			t.Fatalf("%s: exit %d, want 1; %s", name, rc, stderr.String())
		}
		if !strings.Contains(stderr.String(), "not an intact backup; nothing was changed") {
			t.Errorf("%s: stderr %q", name, stderr.String())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%s: data dir was created: %v", name, err)
		}
	}
	if rc := runRestore([]string{"--data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard); rc != 2 {
		t.Fatalf("missing --from: exit %d", rc)
	}
	var stdout bytes.Buffer
	env := map[string]string{"KV_DATA_DIR": dir, "KV_PEER_ADDR": peer}
	if rc := runRestore([]string{"--from", good}, func(k string) string { return env[k] }, &stdout, io.Discard); rc != 0 {
		t.Fatalf("restore: exit %d", rc)
	}
	if !strings.Contains(stdout.String(), "3 entries") || !strings.Contains(stdout.String(), "cluster id "+srcID) {
		t.Fatalf("stdout: %s", stdout.String())
	}
	if rc := runRestore([]string{"--from", good, "--data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard); rc != 1 {
		t.Fatalf("second restore into a seeded dir: exit %d, want 1", rc)
	}

	dst, _ := startTestNode(t, nil, "--api-key", "secret", "--data-dir", dir, "--peer-addr", peer)
	base = "http://" + dst.httpAddr
	code, body := do(t, "GET", base+"/kv/items/b", "")
	if code != 200 || !bytes.Contains(body, []byte(`"value":"b"`)) {
		t.Fatalf("GET after restore: %d %s", code, body)
	}
	if got := dst.store.DataHash(); got != wantHash {
		t.Fatalf("state hash %s after restore, want %s", got, wantHash)
	}
	if got := dst.store.ClusterID(); got != srcID {
		t.Fatalf("offline restore: cluster id %q, want the backup's %q", got, srcID)
	}
	if code, _ := do(t, "PUT", base+"/kv/items/d", `{"value":1}`); code != 201 {
		t.Fatalf("write after restore: %d", code)
	}

	// Online: a damaged upload is refused, the good one replaces the data.
	if code, body := do(t, "POST", base+"/admin/restore", string(file[:len(file)-3])); code != 400 || !bytes.Contains(body, []byte("invalid_backup")) {
		t.Fatalf("truncated online restore: %d %s", code, body)
	}
	if code, _ := do(t, "GET", base+"/kv/items/d", ""); code != 200 {
		t.Fatalf("a refused restore changed the data: GET d = %d", code)
	}
	if code, body := do(t, "POST", base+"/admin/restore", string(file)); code != 200 || !bytes.Contains(body, []byte(`"entries":3`)) {
		t.Fatalf("online restore: %d %s", code, body)
	}
	if code, _ := do(t, "GET", base+"/kv/items/d", ""); code != 404 {
		t.Fatalf("a key written after the backup survived the restore: %d", code)
	}
	if code, body := do(t, "GET", base+"/kv/items/a", ""); code != 200 || !bytes.Contains(body, []byte(`"value":"a"`)) {
		t.Fatalf("GET after online restore: %d %s", code, body)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "restore-*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left in the data dir: %v", leftovers)
	}

	// Another cluster refuses the backup unless forced, and keeps its id.
	other, _ := startTestNode(t, nil, "--api-key", "secret", "--data-dir", t.TempDir(), "--peer-addr", freeAddr(t))
	obase := "http://" + other.httpAddr
	if code, body := do(t, "PUT", obase+"/kv/items/mine", `{"value":1}`); code != 201 {
		t.Fatalf("PUT on the other cluster: %d %s", code, body)
	}
	waitUntil(t, 10*time.Second, "the other cluster's id", func() bool { return other.store.ClusterID() != "" })
	otherID := other.store.ClusterID()
	if code, body := do(t, "POST", obase+"/admin/restore", string(file)); code != 409 || !bytes.Contains(body, []byte(`"cluster_mismatch"`)) {
		t.Fatalf("restore of another cluster's backup: %d %s", code, body)
	}
	if code, _ := do(t, "GET", obase+"/kv/items/mine", ""); code != 200 {
		t.Fatalf("a refused restore changed the data: GET mine = %d", code)
	}
	if code, body := do(t, "POST", obase+"/admin/restore?force=true", string(file)); code != 200 || !bytes.Contains(body, []byte(`"forced":true`)) || !bytes.Contains(body, []byte(`"backupClusterId":"`+srcID+`"`)) {
		t.Fatalf("forced restore: %d %s", code, body)
	}
	if code, _ := do(t, "GET", obase+"/kv/items/a", ""); code != 200 {
		t.Fatalf("GET after forced restore: %d", code)
	}
	if got := other.store.ClusterID(); got != otherID || otherID == srcID {
		t.Fatalf("cluster id after a forced restore: %q, want its own %q", got, otherID)
	}
}
