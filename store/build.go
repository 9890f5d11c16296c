package store

import (
	"encoding/binary"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Build is what a node says about its software: its version and the formats
// of replicated state it reads and writes. GET /cluster/nodes shows every
// node's, so a rolling upgrade's mixed versions are visible; it is what the
// node reports about itself, shown to operators and never used to decide.
type Build struct {
	Version string // "" when the node did not say (a build older than this field)
	Formats fsm.Formats
}

// localBuild is this node's own Build.
func (s *Store) localBuild() Build {
	v := s.cfg.Version
	if v == "" {
		v = version.Get().Version
	}
	return Build{Version: v, Formats: fsm.SupportedFormats()}
}

// Build returns this node's version and formats.
func (s *Store) Build() Build { return s.localBuild() }

// appendBuild encodes b as one uvarint-prefixed section, so a later build
// can add fields that this one skips: version, codec min/max, ops, snapshot
// min/max, backup min/max. It travels at the end of the node-info answer and
// of the node-stats answer, where builds that predate it stop reading.
func appendBuild(dst []byte, b Build) []byte {
	var sec []byte
	sec = appendString(sec, b.Version)
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Codec.Min))
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Codec.Max))
	sec = appendString(sec, b.Formats.Ops)
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Snapshot.Min))
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Snapshot.Max))
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Backup.Min))
	sec = binary.AppendUvarint(sec, uint64(b.Formats.Backup.Max))
	dst = binary.AppendUvarint(dst, uint64(len(sec)))
	return append(dst, sec...)
}

// build reads a section appendBuild wrote; fields a newer build appended
// after the known ones are skipped.
func (d *decoder) build() Build {
	sec := decoder{b: d.bytes()}
	if d.err != nil {
		return Build{}
	}
	var b Build
	b.Version = string(sec.bytes())
	b.Formats.Codec = fsm.Range{Min: int(sec.uvarint()), Max: int(sec.uvarint())}
	b.Formats.Ops = string(sec.bytes())
	b.Formats.Snapshot = fsm.Range{Min: int(sec.uvarint()), Max: int(sec.uvarint())}
	b.Formats.Backup = fsm.Range{Min: int(sec.uvarint()), Max: int(sec.uvarint())}
	if sec.err != nil {
		d.err = sec.err
		return Build{}
	}
	return b
}
