package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/store"
)

// fakeBackup is a BackupSnapshot whose file is a fixed text.
type fakeBackup struct {
	index  uint64
	body   string
	closed chan struct{}
}

func (b *fakeBackup) Index() uint64 { return b.index }
func (b *fakeBackup) Entries() int  { return 3 }
func (b *fakeBackup) ClusterID() string {
	return "c1d2"
}
func (b *fakeBackup) Close() { close(b.closed) }

func (b *fakeBackup) Stream(w io.Writer) (store.BackupInfo, error) {
	n, err := io.WriteString(w, b.body)
	return store.BackupInfo{Index: b.index, Size: int64(n), SHA256: sha256.Sum256([]byte(b.body))}, err
}

// Restore accepts a body starting with "good" and reads it whole; anything
// else is a bad backup. "good-other" is a backup of another cluster, refused
// unless forced.
func (f *fakeStore) Restore(ctx context.Context, body io.Reader, opts store.RestoreOptions) (store.RestoreResult, error) {
	if err := f.enter(ctx, ""); err != nil {
		return store.RestoreResult{}, err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return store.RestoreResult{}, fmt.Errorf("fake: read: %w", err)
	}
	if !strings.HasPrefix(string(b), "good") {
		return store.RestoreResult{}, fmt.Errorf("fake: %w: bad magic", store.ErrBadBackup)
	}
	cluster, forced := "c1d2", false
	if strings.HasPrefix(string(b), "good-other") {
		if !opts.Force {
			return store.RestoreResult{}, fmt.Errorf("fake: %w", store.ErrClusterMismatch)
		}
		cluster, forced = "e5f6", true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastValue = b
	return store.RestoreResult{Index: 77, Entries: 5, Forced: forced, Backup: store.BackupInfo{Index: 42, CreatedAtMs: 1_764_138_600_123,
		Size: int64(len(b)), SHA256: sha256.Sum256(b), ClusterID: cluster}}, nil
}

func (f *fakeStore) Backup(ctx context.Context, level store.ReadLevel) (store.BackupSnapshot, error) {
	if err := f.enter(ctx, ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLevel = level
	f.backup = &fakeBackup{index: 42, body: "backup-bytes", closed: make(chan struct{})}
	return f.backup, nil
}

// download GETs path with the API key and returns the response with its body
// read (so trailers are available).
func (e *testEnv) download(path string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", bearer)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, string(b)
}

func TestAdminSnapshotStreamsBackup(t *testing.T) {
	for _, tc := range []struct {
		query string
		level store.ReadLevel
	}{
		{"", store.Linearizable},
		{"?consistency=linearizable", store.Linearizable},
		{"?consistency=stale", store.Stale},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e := newTestEnv(t, nil)
			resp, body := e.download("/admin/snapshot" + tc.query)
			if resp.StatusCode != http.StatusOK || body != "backup-bytes" {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			want := map[string]string{
				"Content-Type":        "application/octet-stream",
				"Content-Disposition": `attachment; filename="quorumkv-42.qkvbak"`,
				"X-KV-Index":          "42",
				"X-KV-Backup-Entries": "3",
				"Cache-Control":       "no-store",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			sum := sha256.Sum256([]byte("backup-bytes"))
			if got := resp.Trailer.Get("X-KV-Backup-Sha256"); got != hex.EncodeToString(sum[:]) {
				t.Errorf("trailer sha256 = %q", got)
			}
			if got := resp.Trailer.Get("X-KV-Backup-Size"); got != "12" {
				t.Errorf("trailer size = %q", got)
			}
			e.st.mu.Lock()
			level, b := e.st.lastLevel, e.st.backup
			e.st.mu.Unlock()
			if level != tc.level {
				t.Errorf("level = %v, want %v", level, tc.level)
			}
			<-b.closed // the handler released the frozen state
		})
	}
}

func TestAdminSnapshotErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	wantError(t, e.do("GET", "/admin/snapshot?consistency=eventual", "", bearer), 400, "invalid_parameter")
	wantError(t, e.do("GET", "/admin/snapshot?minIndex=3", "", bearer), 400, "invalid_parameter")
	wantError(t, e.do("POST", "/admin/snapshot", "", bearer), 405, "method_not_allowed")
	e.st.setErr(fmt.Errorf("wrapped: %w", store.ErrNoLeader))
	wantError(t, e.do("GET", "/admin/snapshot", "", bearer), 503, "no_leader")
	e.st.setErr(fmt.Errorf("wrapped: %w", store.ErrTimeout))
	wantError(t, e.do("GET", "/admin/snapshot", "", bearer), 503, "timeout")
}

func TestAdminRoutesRequireAuth(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, rt := range []struct{ method, path string }{
		{"GET", "/admin/snapshot"},
		{"POST", "/admin/snapshot"},
		{"POST", "/admin/restore"},
		{"GET", "/admin/restore"},
	} {
		for _, auth := range []string{"", "Bearer wrong", strings.TrimPrefix(bearer, "Bearer ")} {
			wantError(t, e.do(rt.method, rt.path, "", auth), 401, "unauthorized")
		}
	}
	if n := e.st.callCount(); n != 0 {
		t.Fatalf("store called %d times without a valid key", n)
	}
}

func TestAdminRestore(t *testing.T) {
	e := newTestEnv(t, nil)
	res := e.do("POST", "/admin/restore", "good backup bytes", bearer)
	var data restoreData
	wantData(t, res, 200, &data)
	sum := sha256.Sum256([]byte("good backup bytes"))
	if data.BackupCluster == nil || *data.BackupCluster != "c1d2" || data.Forced {
		t.Fatalf("backupClusterId %v, forced %v", data.BackupCluster, data.Forced)
	}
	data.BackupCluster = nil
	want := restoreData{Index: 77, Entries: 5, BackupIndex: 42, BackupCreated: "2025-11-26T06:30:00.123Z",
		Bytes: 17, SHA256: hex.EncodeToString(sum[:])}
	if data != want {
		t.Fatalf("data %+v, want %+v", data, want)
	}
	if res.header.Get("X-KV-Index") != "77" {
		t.Errorf("X-KV-Index = %q", res.header.Get("X-KV-Index"))
	}
	if _, v, _ := e.st.last(); string(v) != "good backup bytes" {
		t.Errorf("store got %q", v)
	}
	// The body limit is the restore limit, not the value limit.
	big := "good" + strings.Repeat("x", 3<<20)
	wantData(t, e.do("POST", "/admin/restore", big, bearer), 200, nil)
}

func TestAdminRestoreErrors(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxRestoreBytes = 1000 })
	wantError(t, e.do("POST", "/admin/restore", "garbage", bearer), 400, "invalid_backup")
	wantError(t, e.do("POST", "/admin/restore", "", bearer), 400, "invalid_backup")
	wantError(t, e.do("POST", "/admin/restore", "good"+strings.Repeat("x", 1000), bearer), 413, "too_large")
	wantError(t, e.do("PUT", "/admin/restore", "good", bearer), 405, "method_not_allowed")
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrRestoreInterrupted, 503, "restore_interrupted"},
		{store.ErrRestoreInProgress, 409, "restore_in_progress"},
		{store.ErrOutcomeUnknown, 503, "outcome_unknown"},
		{store.ErrNoLeader, 503, "no_leader"},
	} {
		e.st.setErr(fmt.Errorf("wrapped: %w", tc.err))
		wantError(t, e.do("POST", "/admin/restore", "good", bearer), tc.status, tc.code)
	}
}

// A chunked upload over the limit (no Content-Length) is cut while read.
func TestAdminRestoreChunkedUploadLimit(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxRestoreBytes = 1000 })
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("good"))
		for i := 0; i < 100; i++ {
			if _, err := pw.Write(make([]byte, 100)); err != nil {
				break
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.srv.URL+"/admin/restore", pr)
	req.Header.Set("Authorization", bearer)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// TestAdminRestoreClusterCheck: a backup of another cluster is 409
// cluster_mismatch unless ?force=true; force takes exactly true or false.
func TestAdminRestoreClusterCheck(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, path := range []string{"/admin/restore", "/admin/restore?force=false"} {
		body := wantError(t, e.do("POST", path, "good-other cluster", bearer), 409, "cluster_mismatch")
		if body.Retryable || !strings.Contains(body.Message, "force=true") {
			t.Fatalf("%s: %+v", path, body)
		}
	}
	var data restoreData
	wantData(t, e.do("POST", "/admin/restore?force=true", "good-other cluster", bearer), 200, &data)
	if !data.Forced || data.BackupCluster == nil || *data.BackupCluster != "e5f6" {
		t.Fatalf("forced restore: %+v", data)
	}
	for _, bad := range []string{"?force=yes", "?force=", "?force=true&force=true"} {
		wantError(t, e.do("POST", "/admin/restore"+bad, "good", bearer), 400, "invalid_parameter")
	}
	res, _ := e.download("/admin/snapshot")
	if res.Header.Get("X-KV-Cluster-Id") != "c1d2" {
		t.Fatalf("snapshot X-KV-Cluster-Id = %q", res.Header.Get("X-KV-Cluster-Id"))
	}
}
