package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
)

// The node address table is replicated cluster metadata: raft server ID →
// the HTTP API address that server advertises. raft's own configuration holds
// only peer addresses, and an operator listing the cluster from any node (even
// while some node is down) needs every node's HTTP address, so it lives in the
// log like the data: OpNodeAddr commands change it, snapshots carry it (format
// version 3) and Hash covers it. Membership itself stays in raft's
// configuration: an entry here for a server that is not in the configuration
// is ignored by readers, never trusted.

// maxNodeAddrField bounds a node ID or address in a snapshot.
const maxNodeAddrField = 1 << 10

// NodeAddrResult is the outcome of OpNodeAddr.
type NodeAddrResult struct{}

// setNodeAddr applies OpNodeAddr; f.mu must be held for writing.
func (f *FSM) setNodeAddr(cmd *Command) NodeAddrResult {
	if cmd.HTTPAddr == "" {
		delete(f.nodes, cmd.NodeID)
	} else {
		f.nodes[cmd.NodeID] = cmd.HTTPAddr
	}
	return NodeAddrResult{}
}

// NodeAddr returns the HTTP address recorded for server id.
func (f *FSM) NodeAddr(id string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.nodes[id]
	return a, ok
}

// NodeAddrs returns a copy of the whole table.
func (f *FSM) NodeAddrs() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.nodes)
}

// writeNodes writes the node section of a version 3 snapshot: a uint64 count,
// then per entry in ascending ID order: uvarint len(id), id, uvarint
// len(addr), addr.
func writeNodes(bw *bufio.Writer, nodes map[string]string) error {
	var scratch [binary.MaxVarintLen64]byte
	if _, err := bw.Write(binary.BigEndian.AppendUint64(scratch[:0], uint64(len(nodes)))); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		for _, s := range []string{id, nodes[id]} {
			if _, err := bw.Write(binary.AppendUvarint(scratch[:0], uint64(len(s)))); err != nil {
				return err
			}
			if _, err := bw.WriteString(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// readNodes reads the node section, requiring ascending, non-empty IDs and
// non-empty addresses.
func (s *snapReader) readNodes() (map[string]string, error) {
	var cnt [8]byte
	if err := s.readFull(cnt[:]); err != nil {
		return nil, s.wrap(err, "node count")
	}
	count := binary.BigEndian.Uint64(cnt[:])
	nodes := make(map[string]string)
	var prev string
	for i := uint64(0); i < count; i++ {
		var fields [2]string
		for j, name := range []string{"id", "address"} {
			what := fmt.Sprintf("node %d %s", i, name)
			n, err := binary.ReadUvarint(s)
			if err != nil {
				return nil, s.wrap(err, what+" length")
			}
			if n == 0 || n > maxNodeAddrField {
				return nil, fmt.Errorf("%w: %s: bad length %d", ErrBadSnapshot, what, n)
			}
			if fields[j], err = s.readString(n); err != nil {
				return nil, s.wrap(err, what)
			}
		}
		if i > 0 && fields[0] <= prev {
			return nil, fmt.Errorf("%w: node %d: id %q not after previous id %q", ErrBadSnapshot, i, fields[0], prev)
		}
		prev = fields[0]
		nodes[fields[0]] = fields[1]
	}
	return nodes, nil
}

// hashNodes feeds the table to Hash: nothing when it is empty (so states
// without membership metadata hash as before), else the byte 0xfe and per
// entry in ID order: uvarint len(id), id, uvarint len(addr), addr.
func hashNodes(h io.Writer, nodes map[string]string) {
	if len(nodes) == 0 {
		return
	}
	h.Write([]byte{0xfe})
	var scratch [binary.MaxVarintLen64]byte
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		for _, s := range []string{id, nodes[id]} {
			h.Write(binary.AppendUvarint(scratch[:0], uint64(len(s))))
			io.WriteString(h, s)
		}
	}
}
