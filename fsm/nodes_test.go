package fsm

import (
	"encoding/binary"
	"maps"
	"testing"
)

// nodesSection encodes the version 3 node section from id, addr pairs, in
// the order given, followed by an empty staging section.
func nodesSection(pairs ...string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(len(pairs)/2))
	for _, s := range pairs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	// Version 3 continues with the staging section: restore id 0, none staged.
	return binary.BigEndian.AppendUint64(b, 0)
}

// clusterSection is a version 4 snapshot's cluster section.
func clusterSection(id string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(id))), id...)
}

func nodeCmd(id, addr string) Command {
	return Command{Op: OpNodeAddr, NodeID: id, HTTPAddr: addr, Now: 1}
}

func TestNodeAddrApplySnapshotAndHash(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("a", "1", 0, 0))
	before := f.Hash()
	if got := f.Apply(cmdLog(2, nodeCmd("n2", "http://127.0.0.1:8082"))); got != (NodeAddrResult{}) {
		t.Fatalf("apply node-addr = %#v", got)
	}
	f.Apply(cmdLog(3, nodeCmd("n1", "http://127.0.0.1:8081")))
	f.Apply(cmdLog(4, nodeCmd("n1", "http://10.0.0.1:8081"))) // replaced
	f.Apply(cmdLog(5, nodeCmd("n3", "http://127.0.0.1:8083")))
	f.Apply(cmdLog(6, nodeCmd("n3", ""))) // forgotten
	want := map[string]string{"n1": "http://10.0.0.1:8081", "n2": "http://127.0.0.1:8082"}
	if got := f.NodeAddrs(); !maps.Equal(got, want) {
		t.Fatalf("NodeAddrs = %v, want %v", got, want)
	}
	if a, ok := f.NodeAddr("n1"); !ok || a != want["n1"] {
		t.Fatalf("NodeAddr(n1) = %q %v", a, ok)
	}
	if f.Hash() == before {
		t.Fatal("Hash ignores the node table")
	}
	if f.Len() != 1 {
		t.Fatalf("node metadata counted as keys: Len = %d", f.Len())
	}

	snap := persist(t, f)
	wantTail := append(nodesSection("n1", "http://10.0.0.1:8081", "n2", "http://127.0.0.1:8082"), clusterSection("")...)
	wantTail = append(wantTail, clockSection(1)...) // nodeCmd's Now
	if tail := snap[len(snap)-4-len(wantTail) : len(snap)-4]; string(tail) != string(wantTail) {
		t.Fatalf("node section = %x, want %x", tail, wantTail)
	}
	g := New()
	g.Apply(cmdLog(1, nodeCmd("stale", "http://x")))
	if err := restoreBytes(g, snap); err != nil {
		t.Fatal(err)
	}
	if got := g.NodeAddrs(); !maps.Equal(got, want) || g.Hash() != f.Hash() {
		t.Fatalf("restored NodeAddrs = %v (hash equal %v)", got, g.Hash() == f.Hash())
	}

	// A version 2 snapshot (no node section) restores with an empty table.
	v2 := craftSnapshot(snapshotMagic, 2, 2, 1, snapshotRecord("a", "1", 1, 0), idemSection())
	if err := restoreBytes(g, v2); err != nil {
		t.Fatalf("restore version 2: %v", err)
	}
	if n := len(g.NodeAddrs()); n != 0 {
		t.Fatalf("version 2 restore kept %d node addresses", n)
	}
}
