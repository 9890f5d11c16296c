package httpapi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// Backup download headers. The SHA-256 and size are known only once the body
// is written, so they travel as HTTP trailers (announced in "Trailer").
const (
	headerBackupEntries = "X-KV-Backup-Entries"
	headerClusterID     = "X-KV-Cluster-Id"
	headerBackupSHA256  = "X-KV-Backup-Sha256"
	headerBackupSize    = "X-KV-Backup-Size"
)

// adminStallTimeout bounds how long one write of a download may stall. Admin transfers can take longer than the server's overall
// write timeout, so it is replaced by this rolling deadline.
const adminStallTimeout = 30 * time.Second

// adminSnapshot serves GET /admin/snapshot: a backup file (see fsm/backup.go)
// of the data at a linearizable point, or of this node's state with
// ?consistency=stale. The body is streamed from an O(1) copy-on-write copy;
// writes continue meanwhile and are not in it. X-KV-Index is the raft index
// the backup reflects; the SHA-256 and size follow as trailers (the file also
// ends with its SHA-256, so a truncated download is detected by restore).
func (a *api) adminSnapshot(r *http.Request) (reply, error) {
	opts, err := readOptions(r)
	if err != nil {
		return reply{}, err
	}
	if opts.MinIndex != 0 {
		return reply{}, errInvalidParameter("minIndex is not supported on /admin/snapshot; use consistency=linearizable (the default) or stale.")
	}
	b, err := a.st.Backup(r.Context(), opts.Level)
	if err != nil {
		return reply{}, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="quorumkv-%d.qkvbak"`, b.Index()))
	h.Set(headerIndex, strconv.FormatUint(b.Index(), 10))
	h.Set(headerBackupEntries, strconv.Itoa(b.Entries()))
	if id := b.ClusterID(); id != "" {
		h.Set(headerClusterID, id)
	}
	h.Set("Trailer", headerBackupSHA256+", "+headerBackupSize)
	return reply{status: http.StatusOK, header: h, stream: func(w http.ResponseWriter) {
		defer b.Close()
		info, err := b.Stream(&stallWriter{w: w, rc: http.NewResponseController(w)})
		if err != nil {
			// The status is sent; the client sees a body without trailers
			// and a file whose checksum does not verify.
			a.log.Warn("backup download interrupted", "index", b.Index(), "err", err)
			return
		}
		w.Header().Set(headerBackupSHA256, hex.EncodeToString(info.SHA256[:]))
		w.Header().Set(headerBackupSize, strconv.FormatInt(info.Size, 10))
		a.log.Info("backup served", "index", info.Index, "entries", info.Entries, "bytes", info.Size)
	}}, nil
}

// stallWriter pushes the connection's write deadline forward before every
// write, so a long download is not cut by the server's write timeout while a
// stalled client still is.
type stallWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (s *stallWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(adminStallTimeout)) // unsupported writers keep the server's
	return s.w.Write(p)
}

type restoreData struct {
	Index         uint64 `json:"index"`
	Entries       int    `json:"entries"`
	BackupIndex   uint64 `json:"backupIndex"`
	BackupCreated string `json:"backupCreatedAt"`
	Bytes         int64  `json:"bytes"`
	SHA256        string `json:"sha256"`
	// BackupCluster is the id of the cluster the backup came from (null: an
	// older file that names none); Forced says ?force=true let a mismatch
	// through.
	BackupCluster *string `json:"backupClusterId"`
	Forced        bool    `json:"forced"`
}

// adminRestore serves POST /admin/restore: the body is a backup file. The
// store verifies it completely before changing anything (400 invalid_backup
// otherwise), then replaces the whole dataset on every node at one log index.
// The body is bounded by Config.MaxRestoreBytes (413 beyond it) and the request
// by Config.RestoreTimeout, which also replaces the server's read and write
// timeouts for this connection (see dispatch). A backup from another cluster
// is refused (409 cluster_mismatch) unless ?force=true.
func (a *api) adminRestore(r *http.Request) (reply, error) {
	var opts store.RestoreOptions
	switch v := r.URL.Query()["force"]; {
	case len(v) == 0:
	case len(v) == 1 && (v[0] == "true" || v[0] == "false"):
		opts.Force = v[0] == "true"
	default:
		return reply{}, errInvalidParameter(`force must be given once, as true or false (?force=true restores a backup taken from another cluster).`)
	}
	limit := a.cfg.MaxRestoreBytes
	if r.ContentLength > limit {
		return reply{}, errRestoreTooLarge(limit)
	}
	res, err := a.st.Restore(r.Context(), r.Body, opts)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return reply{}, errRestoreTooLarge(limit)
		}
		return reply{}, err
	}
	a.log.Info("restore committed", "index", res.Index, "entries", res.Entries, "backup_index", res.Backup.Index, "forced", res.Forced)
	var cluster *string
	if res.Backup.ClusterID != "" {
		cluster = &res.Backup.ClusterID
	}
	rep, err := dataReply(http.StatusOK, restoreData{
		BackupCluster: cluster,
		Forced:        res.Forced,
		Index:         res.Index,
		Entries:       res.Entries,
		BackupIndex:   res.Backup.Index,
		BackupCreated: time.UnixMilli(res.Backup.CreatedAtMs).UTC().Format(expiresAtLayout),
		Bytes:         res.Backup.Size,
		SHA256:        hex.EncodeToString(res.Backup.SHA256[:]),
	})
	if err == nil {
		rep.header = writeHeaders(0, res.Index)
	}
	return rep, err
}

func errRestoreTooLarge(limit int64) *apiError {
	return errTooLarge(fmt.Sprintf("The backup is larger than %d bytes, this node's limit for POST /admin/restore (--max-restore-bytes).", limit))
}
