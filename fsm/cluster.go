package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
)

// The cluster id is a stable, random name for one cluster, replicated like the
// node address table (cluster metadata, not data). The first leader of a new
// cluster proposes OpClusterID right after its barrier; the FSM records the
// first id it applies and ignores every later one, so concurrent proposals by
// successive leaders agree on the first to commit, and nothing can rename a
// cluster. Snapshots carry it (format version 4), Hash covers it and DataHash
// does not.
//
// Backups carry it in their header and body (backup.go): an online restore
// checks the backup's id against the cluster's and keeps the cluster's own id
// whatever the backup says; an offline restore seeds a new cluster with the
// backup's snapshot, so that cluster adopts the backup's id and continues the
// one it was taken from (its backups and the old ones restore into each other
// without forcing).

// MaxClusterIDLen bounds a cluster id in commands, snapshots and backups.
const MaxClusterIDLen = 64

// ClusterIDResult is the outcome of OpClusterID: the id in force afterwards,
// which is the proposed one only if none was recorded before.
type ClusterIDResult struct {
	ID string
}

// setClusterID applies OpClusterID; f.mu must be held for writing.
func (f *FSM) setClusterID(cmd *Command) ClusterIDResult {
	if f.clusterID == "" {
		f.clusterID = cmd.ClusterID
	}
	return ClusterIDResult{ID: f.clusterID}
}

// ClusterID is the id recorded by OpClusterID, or "" before the first leader
// of a new cluster (or of a cluster created before ids existed) recorded one.
func (f *FSM) ClusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.clusterID
}

// validClusterID is the rule Decode applies to OpClusterID and snapshot and
// backup readers apply to the ids they read: 1 to MaxClusterIDLen printable
// ASCII bytes (ids are generated as hex; the rule keeps hostile input out of
// logs and headers).
func validClusterID(id string) error {
	if id == "" || len(id) > MaxClusterIDLen {
		return fmt.Errorf("cluster id of %d bytes (want 1 to %d)", len(id), MaxClusterIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7f {
			return fmt.Errorf("cluster id holds byte %#x (want printable ASCII without spaces)", c)
		}
	}
	return nil
}

// writeClusterID writes the cluster section of a version 4 snapshot:
// uvarint len(id), id (length 0: no id recorded yet).
func writeClusterID(bw *bufio.Writer, id string) error {
	if _, err := bw.Write(binary.AppendUvarint(nil, uint64(len(id)))); err != nil {
		return err
	}
	_, err := bw.WriteString(id)
	return err
}

// readClusterID reads the section writeClusterID writes.
func (s *snapReader) readClusterID() (string, error) {
	n, err := binary.ReadUvarint(s)
	if err != nil {
		return "", s.wrap(err, "cluster id length")
	}
	if n == 0 {
		return "", nil
	}
	if n > MaxClusterIDLen {
		return "", fmt.Errorf("%w: cluster id length %d exceeds %d", ErrBadSnapshot, n, MaxClusterIDLen)
	}
	id, err := s.readString(n)
	if err != nil {
		return "", s.wrap(err, "cluster id")
	}
	if err := validClusterID(id); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return id, nil
}
