package fsm

import (
	"bytes"
	"testing"
)

func clusterCmd(id string) Command {
	return Command{Op: OpClusterID, ClusterID: id, Now: 1}
}

// TestClusterIDFirstWins: the first recorded id stays; snapshots carry it;
// Hash covers it and DataHash does not.
func TestClusterIDFirstWins(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("a", "1", 0, 0))
	before, beforeData := f.Hash(), f.DataHash()
	if res := apply(t, f, 2, clusterCmd("first")).(ClusterIDResult); res.ID != "first" {
		t.Fatalf("first id: %+v", res)
	}
	if res := apply(t, f, 3, clusterCmd("second")).(ClusterIDResult); res.ID != "first" || f.ClusterID() != "first" {
		t.Fatalf("a later id replaced the first: %+v, %q", res, f.ClusterID())
	}
	if f.Hash() == before {
		t.Fatal("Hash ignores the cluster id")
	}
	if f.DataHash() != beforeData {
		t.Fatal("DataHash covers the cluster id")
	}
	g := New()
	if err := restoreBytes(g, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	if g.ClusterID() != "first" || g.Hash() != f.Hash() {
		t.Fatalf("snapshot round trip: cluster %q", g.ClusterID())
	}
}

// TestOnlineRestoreKeepsTheClusterID: a backup of cluster A restored online
// into cluster B replaces B's data but B stays B.
func TestOnlineRestoreKeepsTheClusterID(t *testing.T) {
	a := populated(t)
	apply(t, a, a.AppliedIndex()+1, clusterCmd("cluster-a"))
	file, _ := backupBytes(t, a, 5)
	var body bytes.Buffer
	if _, err := CopyBackupBody(bytes.NewReader(file), &body); err != nil {
		t.Fatal(err)
	}
	b := New()
	apply(t, b, 1, clusterCmd("cluster-b"))
	apply(t, b, 2, chunkCmd(9, 0, body.Bytes()))
	if res := apply(t, b, 3, commitCmd(9, 1)).(RestoreResult); !res.OK {
		t.Fatalf("commit: %+v", res)
	}
	if b.ClusterID() != "cluster-b" || b.DataHash() == New().DataHash() || b.Len() != a.Len() {
		t.Fatalf("after restore: cluster %q, %d entries", b.ClusterID(), b.Len())
	}
}
