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
func (b *fakeBackup) Close()        { close(b.closed) }

func (b *fakeBackup) Stream(w io.Writer) (store.BackupInfo, error) {
	n, err := io.WriteString(w, b.body)
	return store.BackupInfo{Index: b.index, Size: int64(n), SHA256: sha256.Sum256([]byte(b.body))}, err
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
	} {
		for _, auth := range []string{"", "Bearer wrong", strings.TrimPrefix(bearer, "Bearer ")} {
			wantError(t, e.do(rt.method, rt.path, "", auth), 401, "unauthorized")
		}
	}
	if n := e.st.callCount(); n != 0 {
		t.Fatalf("store called %d times without a valid key", n)
	}
}
