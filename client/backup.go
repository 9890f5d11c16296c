package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// SnapshotInfo describes a snapshot Snapshot wrote.
type SnapshotInfo struct {
	// Bytes is the number of bytes written.
	Bytes int64
	// SHA256 is the hex SHA-256 a snapshot file ends with: that of every
	// byte before its last 32, which are this checksum. The client computes
	// it as the bytes pass and compares it with those 32 bytes and with the
	// SHA-256 the server sends after the body; set only when Verified.
	SHA256 string
	// Verified says all three agree, and the size the server sent too
	// (quorumkv sends them; a server or proxy that drops trailers does not,
	// and then only the file's own checksum, checked by Restore and by
	// kvctl snapshot verify, protects it).
	Verified bool
	// Index is the raft index the snapshot reflects; Entries its number of
	// keys; ClusterID the cluster it came from (empty from a server that
	// does not say).
	Index     uint64
	Entries   int
	ClusterID string
}

// Snapshot streams a consistent point-in-time snapshot of the whole dataset
// (GET /admin/snapshot) into w and returns the number of bytes written. It
// is SnapshotWithInfo without the description.
func (c *Client) Snapshot(ctx context.Context, w io.Writer, opts ...Option) (int64, error) {
	info, err := c.SnapshotWithInfo(ctx, w, opts...)
	return info.Bytes, err
}

// SnapshotWithInfo streams a consistent point-in-time snapshot of the whole
// dataset (GET /admin/snapshot) into w. The client hashes the bytes as they
// pass and compares the SHA-256 and size with those the server sends after
// the body: a difference (a download cut short, or altered on the way) is an
// error. The file also carries its own checksum, verified again by Restore. Attempts are retried on other nodes
// only until the first byte reaches w; after that a failure is returned as
// is and w holds a truncated copy, which the caller must discard. Options:
// Stale (serve it from the receiving node's state without a linearizable
// read point). Needs an admin key.
func (c *Client) SnapshotWithInfo(ctx context.Context, w io.Writer, opts ...Option) (SnapshotInfo, error) {
	o, err := collect("Snapshot", optStale, opts)
	if err != nil {
		return SnapshotInfo{}, err
	}
	var info SnapshotInfo
	err = c.doFunc(ctx, &call{method: http.MethodGet, path: "/admin/snapshot", query: readQuery(o),
		replayable: true, streaming: true}, func(endpoint string, resp *http.Response) error {
		h := &trailerHasher{h: sha256.New()}
		n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
		info.Bytes = n
		if err != nil {
			return finalError{fmt.Errorf("client: snapshot from %s: after %d bytes: %w", endpoint, n, err)}
		}
		info.Index = indexOf(resp.Header)
		info.Entries, _ = strconv.Atoi(resp.Header.Get("X-KV-Backup-Entries"))
		info.ClusterID = resp.Header.Get("X-KV-Cluster-Id")
		want, size := resp.Trailer.Get("X-KV-Backup-Sha256"), resp.Trailer.Get("X-KV-Backup-Size")
		if want == "" {
			return nil // not announced: Verified stays false
		}
		got, tail := h.sums()
		if !strings.EqualFold(want, got) || !strings.EqualFold(want, tail) || size != strconv.FormatInt(n, 10) {
			return finalError{fmt.Errorf("client: snapshot from %s: received %d bytes hashing to %s and ending with %s, but the server sent %s bytes with SHA-256 %s; discard the file and retry",
				endpoint, n, got, tail, size, want)}
		}
		info.SHA256, info.Verified = got, true
		return nil
	})
	return info, err
}

// RestoreResult is the server's summary of a restore.
type RestoreResult struct {
	// Index is the log index at which the restore was applied; Entries the
	// number of keys the dataset now holds.
	Index   uint64 `json:"index"`
	Entries int    `json:"entries"`
	// BackupIndex and BackupCreatedAt describe the snapshot restored: the
	// index it reflected and when it was taken (RFC 3339).
	BackupIndex     uint64 `json:"backupIndex"`
	BackupCreatedAt string `json:"backupCreatedAt"`
	// Bytes and SHA256 are the size and hex SHA-256 of the file the server
	// received and verified.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// BackupClusterID is the cluster the snapshot came from (empty: an older
	// file that names none); Forced says ForceRestore let a mismatch through.
	BackupClusterID string `json:"backupClusterId"`
	Forced          bool   `json:"forced"`
}

// Restore replaces the whole dataset, on every node, with the snapshot read
// from r (POST /admin/restore). The server verifies the checksum first and
// rejects a corrupt or truncated file without changing anything. Restore is
// not replayable: it is retried on another node only when the failure proves
// nothing was done, and only if r is an io.Seeker (rewound to its start,
// so r must be at its start when Restore is called). A backup from another
// cluster fails with ErrClusterMismatch unless the ForceRestore option is
// given; ErrRestoreInProgress means another restore is running. It returns
// the server's summary. Needs an admin key.
func (c *Client) Restore(ctx context.Context, r io.Reader, opts ...Option) (RestoreResult, error) {
	o, err := collect("Restore", optForceRestore, opts)
	if err != nil {
		return RestoreResult{}, err
	}
	var query url.Values
	if o.set&optForceRestore != 0 {
		query = url.Values{"force": {"true"}}
	}
	res, err := c.do(ctx, &call{method: http.MethodPost, path: "/admin/restore", stream: r, query: query,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, streaming: true})
	if err != nil {
		return RestoreResult{}, err
	}
	var out RestoreResult
	if err := decodeData(res, &out); err != nil {
		return RestoreResult{}, fmt.Errorf("client: the restore was applied, but its summary is unreadable: %w", err)
	}
	return out, nil
}

// trailerHasher hashes every byte written to it except the last 32 (a
// backup's SHA-256 trailer), which it keeps.
type trailerHasher struct {
	h    hash.Hash
	tail []byte // the last ≤ 32 bytes seen, not hashed yet
}

func (t *trailerHasher) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= sha256.Size {
		t.h.Write(t.tail)
		t.h.Write(p[:len(p)-sha256.Size])
		t.tail = append(t.tail[:0], p[len(p)-sha256.Size:]...)
		return n, nil
	}
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - sha256.Size; over > 0 {
		t.h.Write(t.tail[:over])
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return n, nil
}

// sums returns the hex SHA-256 of the bytes before the tail, and the tail.
func (t *trailerHasher) sums() (hashed, tail string) {
	return hex.EncodeToString(t.h.Sum(nil)), hex.EncodeToString(t.tail)
}
