package fsm

import (
	"fmt"
	"strings"
)

// Range is an inclusive range of format versions.
type Range struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Formats lists the encodings of replicated state this build reads (from Min)
// and writes (Max). During a rolling upgrade every node must be able to apply
// what the leader writes, so operators compare these across nodes
// (GET /cluster/nodes shows each node's).
type Formats struct {
	Codec    Range  `json:"codec"`    // command layouts in the raft log (CodecVersion)
	Ops      string `json:"ops"`      // the command ops this build applies, as ranges: "1-9,12-17"
	Snapshot Range  `json:"snapshot"` // raft snapshot format
	Backup   Range  `json:"backup"`   // backup file format (GET /admin/snapshot)
}

// SupportedFormats describes this build.
func SupportedFormats() Formats {
	return Formats{
		Codec:    Range{codecV1, CodecVersion},
		Ops:      knownOps(),
		Snapshot: Range{snapshotFormatV1, snapshotFormatVersion},
		Backup:   Range{backupFormatV1, BackupFormatVersion},
	}
}

// knownOps lists the ops Op.String names, which is every op this build
// decodes and applies, as comma-separated ranges.
func knownOps() string {
	var parts []string
	start := -1
	for i := 1; i <= 256; i++ {
		known := i < 256 && !strings.HasPrefix(Op(i).String(), "op(")
		switch {
		case known && start < 0:
			start = i
		case !known && start >= 0:
			if start == i-1 {
				parts = append(parts, fmt.Sprint(start))
			} else {
				parts = append(parts, fmt.Sprintf("%d-%d", start, i-1))
			}
			start = -1
		}
	}
	return strings.Join(parts, ",")
}
