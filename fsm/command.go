package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Op identifies the kind of a Command. Values are part of the wire format: never
// renumber or reuse one.
type Op uint8

const (
	OpSet     Op = 1
	OpDelete  Op = 2
	OpExpire  Op = 3
	OpBarrier Op = 4 // no state change; proposed by a new leader to mark its term. Only advances the applied index.

	// Ops added with codec version 2; they are only ever encoded as version 2.
	OpTouch        Op = 5 // replace a live key's expiry (ExpiresAt, 0 = none), keeping its value
	OpIncr         Op = 6 // add By to a live integer value, or create it as By (with ExpiresAt)
	OpDeletePrefix Op = 7 // delete every key starting with Key in one entry (still applied from old logs; leaders now propose OpDeletePrefixChunk)
	// OpBatch carries two or more independent writes (set, delete, touch,
	// incr) to distinct keys, applied in order at the batch's log index, each
	// exactly as if it were its own command at that index. The leader groups
	// concurrent client writes this way to pay raft's per-entry costs once per
	// group (store/propose.go). See DESIGN.md.
	OpBatch Op = 8
	// OpDeletePrefixChunk removes at most Limit entries starting with Key that
	// were last written before the bulk delete began (Revision < Bound, or the
	// entry's own index when Bound is 0), resuming strictly after After. The
	// leader proposes one per chunk of a bulk delete (deleteprefix.go).
	OpDeletePrefixChunk Op = 9

	// Online restore (version 2 only; see restore.go). A restore stages a
	// backup's snapshot stream in chunks, then swaps it in with one commit.
	OpRestoreChunk  Op = 12 // append RestoreData to the staged stream of restore RestoreID as chunk RestoreSeq (0 starts a new restore)
	OpRestoreCommit Op = 13 // replace the whole state with the staged stream of RestoreID, which has RestoreSeq chunks
	OpRestoreAbort  Op = 14 // drop the staged stream of RestoreID
	// OpNodeAddr records cluster metadata, not data: NodeID's HTTP API
	// address HTTPAddr (empty: forget it). Version 2 only.
	// Numbered apart from the data ops on purpose. See nodes.go.
	OpNodeAddr Op = 16
	// OpClusterID records the cluster's id (ClusterID) unless one is recorded
	// already (cluster.go). Cluster metadata, version 2 only.
	OpClusterID Op = 17

	// OpTxn is a transaction (txn.go): checks on the state, then writes
	// (set, delete, touch, incr) and reads (OpTxnGet) of distinct keys, all
	// at the entry's index, or nothing at all. Version 2 only.
	OpTxn Op = 20
	// OpTxnGet reads one key; it exists only inside an OpTxn (Decode refuses
	// it as a command of its own).
	OpTxnGet Op = 21
)

// String returns a lower-case name for known ops and "op(N)" otherwise.
func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpBarrier:
		return "barrier"
	case OpTouch:
		return "touch"
	case OpIncr:
		return "incr"
	case OpDeletePrefix:
		return "delete-prefix"
	case OpBatch:
		return "batch"
	case OpDeletePrefixChunk:
		return "delete-prefix-chunk"
	case OpRestoreChunk:
		return "restore-chunk"
	case OpRestoreCommit:
		return "restore-commit"
	case OpRestoreAbort:
		return "restore-abort"
	case OpNodeAddr:
		return "node-addr"
	case OpClusterID:
		return "cluster-id"
	case OpTxn:
		return "txn"
	case OpTxnGet:
		return "get"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// CodecVersion is the newest command layout this build writes. The first byte
// of every encoded command is its layout version: Decode accepts exactly
// codecV1 and codecV2 and refuses (Decode fails, Apply panics) anything else
// rather than guess at its layout.
//
// Encode writes version 1 whenever the command fits it (a set, delete, expire
// or barrier with no condition, keepTtl or idempotency key), so the commands of
// the original API stay readable by replicas that only know version 1 during a
// rolling upgrade; anything else is version 2. See DESIGN.md.
const CodecVersion = codecV2

const (
	codecV1 = 1
	codecV2 = 2
)

// Cond is the precondition a write checks against the key's state at the
// command's Now, inside Apply.
type Cond uint8

const (
	CondNone     Cond = 0
	CondIfMatch  Cond = 1 // the key is live and its revision equals CondVersion
	CondIfAbsent Cond = 2 // the key is missing or expired
)

// FingerprintSize is the length of an idempotency fingerprint (a SHA-256).
const FingerprintSize = 32

// Version 2 flag bits, a uvarint after Now. A bit the op does not use, or an
// unknown bit, makes Decode fail.
const (
	flagIfMatch  = 1 << 0 // followed by uvarint CondVersion
	flagIfAbsent = 1 << 1
	flagKeepTTL  = 1 << 2
	flagIdem     = 1 << 3 // followed by uvarint len(IdemKey), IdemKey, FingerprintSize bytes
	flagsKnown   = flagIfMatch | flagIfAbsent | flagKeepTTL | flagIdem
)

// opFlags lists the flags each op may carry.
var opFlags = map[Op]uint64{
	OpSet:               flagIfMatch | flagIfAbsent | flagKeepTTL | flagIdem,
	OpDelete:            flagIfMatch | flagIdem,
	OpExpire:            0,
	OpBarrier:           0,
	OpTouch:             flagIfMatch | flagIdem,
	OpIncr:              flagIfMatch | flagIdem,
	OpDeletePrefix:      flagIdem,
	OpDeletePrefixChunk: flagIdem,
	OpBatch:             0,
	OpRestoreChunk:      0,
	OpRestoreCommit:     0,
	OpRestoreAbort:      0,
	OpNodeAddr:          0,
	OpClusterID:         0,
	OpTxn:               flagIdem,
	OpTxnGet:            0,
}

// Decode errors. Every error returned by Decode wraps exactly one of these.
var (
	// ErrUnsupportedVersion: the first byte is not CodecVersion.
	ErrUnsupportedVersion = errors.New("fsm: unsupported command codec version")
	// ErrUnknownOp: the op byte names no operation this build knows.
	ErrUnknownOp = errors.New("fsm: unknown command op")
	// ErrMalformed: the input is empty or truncated, has trailing bytes, or holds
	// a length that does not fit in the input.
	ErrMalformed = errors.New("fsm: malformed command")
)

// ExpireItem names one entry an Expire command may delete: it is deleted only if
// the entry's current revision is still Revision.
type ExpireItem struct {
	Key      string
	Revision uint64
}

// Command is one replicated operation. All non-determinism is decided by the
// proposer (the leader) before encoding.
//
// Encode writes only the fields the op uses; the others are dropped, and Decode
// leaves them zero. An empty Value, RestoreData or Items list decodes as nil.
// Each field means one thing: an op that needs another kind of value has a
// field of its own (the cluster metadata and restore fields below), even
// where its bytes on the wire are laid out as a Key or Value would be.
type Command struct {
	Op        Op
	Key       string       // set, delete, touch, incr; delete-prefix: the prefix
	Value     []byte       // set: the JSON value
	ExpiresAt int64        // set, touch: absolute Unix ms, 0 = never; incr: applied only when the key is created
	Now       int64        // every op: the proposer's clock in Unix ms when proposing; used to decide whether an existing entry is live
	Items     []ExpireItem // expire

	// Version 2 fields.
	Cond        Cond   // set: any; delete, touch, incr: CondNone or CondIfMatch
	CondVersion uint64 // CondIfMatch: the revision the key must have
	KeepTTL     bool   // set: keep the live entry's expiry (ExpiresAt is ignored)
	By          int64  // incr: the amount to add
	// IdemKey, when not empty, makes the command idempotent: Apply records its
	// result under IdemKey with Fingerprint and answers a later command with the
	// same key and fingerprint with that result instead of applying it again.
	IdemKey     string
	Fingerprint [FingerprintSize]byte

	// Online restore fields: the restore's random id (chosen by the proposer,
	// never 0), the chunk's sequence number (commit: the chunk count) and a
	// chunk's bytes of the backup's snapshot stream.
	RestoreID   uint64
	RestoreSeq  uint64
	RestoreData []byte

	// Cluster metadata fields: a raft server ID and its HTTP API address
	// (OpNodeAddr; "" forgets the server), and the cluster's id (OpClusterID).
	NodeID    string
	HTTPAddr  string
	ClusterID string

	// Bulk delete chunk fields (OpDeletePrefixChunk): the most entries this
	// entry removes (at least 1), the revision bound of the whole bulk delete
	// (0: this entry is its first chunk and its own index is the bound), and
	// the key after which to resume ("" = from the prefix; else it starts
	// with the prefix).
	Limit uint64
	Bound uint64
	After string

	// Batch holds an OpBatch's writes: at least two, each Batchable, no two
	// with the same Key. Encode writes whatever it is given; the proposer
	// must respect these rules, and Decode refuses an entry that breaks them.
	Batch []Command

	// Transaction fields (OpTxn, txn.go): the checks, the operations (each a
	// set, delete, touch, incr or OpTxnGet with Now 0 and no condition or
	// idempotency key; no key twice), and the most value bytes the get
	// operations may return together.
	Checks     []TxnCheck
	Ops        []Command
	ReadBudget uint64
}

// MinBatch is the fewest writes an OpBatch carries: a single write is
// encoded as itself, so every command has exactly one encoding.
const MinBatch = 2

// Batchable reports whether c may be one of an OpBatch's writes.
func (c Command) Batchable() bool {
	switch c.Op {
	case OpSet, OpDelete, OpTouch, OpIncr:
		return true
	}
	return false
}

// flags returns the version 2 flag bits c needs.
func (c Command) flags() uint64 {
	var f uint64
	switch c.Cond {
	case CondIfMatch:
		f |= flagIfMatch
	case CondIfAbsent:
		f |= flagIfAbsent
	}
	if c.KeepTTL {
		f |= flagKeepTTL
	}
	if c.IdemKey != "" {
		f |= flagIdem
	}
	return f & opFlags[c.Op]
}

// version returns the layout Encode uses for c.
func (c Command) version() byte {
	switch c.Op {
	case OpSet, OpDelete, OpExpire, OpBarrier:
		if c.flags() == 0 {
			return codecV1
		}
	}
	return codecV2
}

// Encode returns the binary form of c:
//
//	byte 0   layout version (1 or 2, see CodecVersion)
//	byte 1   Op
//	varint   Now
//	version 2 only:
//	  uvarint flags; then if flagIfMatch: uvarint CondVersion;
//	  if flagIdem: uvarint len(IdemKey), IdemKey, 32-byte Fingerprint
//	set:     uvarint len(Key), Key, uvarint len(Value), Value, varint ExpiresAt
//	delete:  uvarint len(Key), Key
//	expire:  uvarint len(Items), then per item: uvarint len(Key), Key, uvarint Revision
//	barrier: nothing more
//	touch:   uvarint len(Key), Key, varint ExpiresAt
//	incr:    uvarint len(Key), Key, varint By, varint ExpiresAt
//	delete-prefix: uvarint len(Key), Key
//	delete-prefix-chunk: uvarint len(Key), Key, uvarint Limit, uvarint Bound, uvarint len(After), After
//	batch:   uvarint len(Batch), then per write: uvarint length, its encoding
//	restore-chunk:  uvarint RestoreID, uvarint RestoreSeq, uvarint len(RestoreData), RestoreData
//	restore-commit: uvarint RestoreID, uvarint RestoreSeq
//	restore-abort:  uvarint RestoreID
//	node-addr: uvarint len(NodeID), NodeID, uvarint len(HTTPAddr), HTTPAddr
//	cluster-id: uvarint len(ClusterID), ClusterID
//	txn:     uvarint ReadBudget, uvarint len(Checks), per check: byte kind,
//	         uvarint len(Key), Key, then uvarint Version (version) or uvarint
//	         len(Value), Value (value); uvarint len(Ops), per op: uvarint
//	         length, its encoding (get: version 2, op 21, Now 0, flags 0, key)
//
// (Until the metadata and restore ops had fields of their own, node-addr
// carried NodeID in Key and HTTPAddr in Value, cluster-id its id in Value and
// restore-chunk its data in Value; the bytes were the same as now, so logs
// and snapshots of either build decode alike: testdata/compat-*.bin.)
//
// Fields the op does not use are dropped. An unknown Op is encoded as version,
// op and Now; Decode rejects it.
func (c Command) Encode() []byte {
	return c.AppendEncode(make([]byte, 0, c.encodedSize()))
}

// AppendEncode appends the encoding of c (see Encode) to dst and returns the
// extended slice.
func (c Command) AppendEncode(dst []byte) []byte {
	v := c.version()
	dst = append(dst, v, byte(c.Op))
	dst = binary.AppendVarint(dst, c.Now)
	if v == codecV2 {
		f := c.flags()
		dst = binary.AppendUvarint(dst, f)
		if f&flagIfMatch != 0 {
			dst = binary.AppendUvarint(dst, c.CondVersion)
		}
		if f&flagIdem != 0 {
			dst = appendString(dst, c.IdemKey)
			dst = append(dst, c.Fingerprint[:]...)
		}
	}
	switch c.Op {
	case OpSet:
		dst = appendString(dst, c.Key)
		dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
		dst = append(dst, c.Value...)
		dst = binary.AppendVarint(dst, c.ExpiresAt)
	case OpDelete:
		dst = appendString(dst, c.Key)
	case OpExpire:
		dst = binary.AppendUvarint(dst, uint64(len(c.Items)))
		for _, it := range c.Items {
			dst = appendString(dst, it.Key)
			dst = binary.AppendUvarint(dst, it.Revision)
		}
	case OpTouch:
		dst = appendString(dst, c.Key)
		dst = binary.AppendVarint(dst, c.ExpiresAt)
	case OpIncr:
		dst = appendString(dst, c.Key)
		dst = binary.AppendVarint(dst, c.By)
		dst = binary.AppendVarint(dst, c.ExpiresAt)
	case OpDeletePrefix:
		dst = appendString(dst, c.Key)
	case OpDeletePrefixChunk:
		dst = appendString(dst, c.Key)
		dst = binary.AppendUvarint(dst, c.Limit)
		dst = binary.AppendUvarint(dst, c.Bound)
		dst = appendString(dst, c.After)
	case OpBatch:
		dst = binary.AppendUvarint(dst, uint64(len(c.Batch)))
		for _, w := range c.Batch {
			dst = binary.AppendUvarint(dst, uint64(w.encodedSize()))
			dst = w.AppendEncode(dst)
		}
	case OpRestoreChunk:
		dst = binary.AppendUvarint(dst, c.RestoreID)
		dst = binary.AppendUvarint(dst, c.RestoreSeq)
		dst = binary.AppendUvarint(dst, uint64(len(c.RestoreData)))
		dst = append(dst, c.RestoreData...)
	case OpRestoreCommit:
		dst = binary.AppendUvarint(dst, c.RestoreID)
		dst = binary.AppendUvarint(dst, c.RestoreSeq)
	case OpRestoreAbort:
		dst = binary.AppendUvarint(dst, c.RestoreID)
	case OpNodeAddr:
		dst = appendString(dst, c.NodeID)
		dst = appendString(dst, c.HTTPAddr)
	case OpClusterID:
		dst = appendString(dst, c.ClusterID)
	case OpTxn:
		dst = c.appendTxn(dst)
	case OpTxnGet:
		dst = appendString(dst, c.Key)
	}
	return dst
}

func (c Command) encodedSize() int {
	n := 2 + varintLen(c.Now)
	if c.version() == codecV2 {
		f := c.flags()
		n += uvarintLen(f)
		if f&flagIfMatch != 0 {
			n += uvarintLen(c.CondVersion)
		}
		if f&flagIdem != 0 {
			n += uvarintLen(uint64(len(c.IdemKey))) + len(c.IdemKey) + FingerprintSize
		}
	}
	switch c.Op {
	case OpSet:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key)
		n += uvarintLen(uint64(len(c.Value))) + len(c.Value)
		n += varintLen(c.ExpiresAt)
	case OpDelete:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key)
	case OpExpire:
		n += uvarintLen(uint64(len(c.Items)))
		for _, it := range c.Items {
			n += uvarintLen(uint64(len(it.Key))) + len(it.Key) + uvarintLen(it.Revision)
		}
	case OpTouch:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key) + varintLen(c.ExpiresAt)
	case OpIncr:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key) + varintLen(c.By) + varintLen(c.ExpiresAt)
	case OpDeletePrefix:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key)
	case OpDeletePrefixChunk:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key) + uvarintLen(c.Limit) + uvarintLen(c.Bound)
		n += uvarintLen(uint64(len(c.After))) + len(c.After)
	case OpBatch:
		n += uvarintLen(uint64(len(c.Batch)))
		for _, w := range c.Batch {
			ws := w.encodedSize()
			n += uvarintLen(uint64(ws)) + ws
		}
	case OpRestoreChunk:
		n += uvarintLen(c.RestoreID) + uvarintLen(c.RestoreSeq) + uvarintLen(uint64(len(c.RestoreData))) + len(c.RestoreData)
	case OpRestoreCommit:
		n += uvarintLen(c.RestoreID) + uvarintLen(c.RestoreSeq)
	case OpRestoreAbort:
		n += uvarintLen(c.RestoreID)
	case OpNodeAddr:
		n += uvarintLen(uint64(len(c.NodeID))) + len(c.NodeID) + uvarintLen(uint64(len(c.HTTPAddr))) + len(c.HTTPAddr)
	case OpClusterID:
		n += uvarintLen(uint64(len(c.ClusterID))) + len(c.ClusterID)
	case OpTxn:
		n += c.txnSize()
	case OpTxnGet:
		n += uvarintLen(uint64(len(c.Key))) + len(c.Key)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// minExpireItemSize is the fewest bytes one encoded ExpireItem can take (an empty
// key's length byte and a one-byte revision). Decode uses it to reject an item
// count that the input cannot hold before allocating for it.
const minExpireItemSize = 2

// Decode parses a command produced by Encode. It never panics and allocates no
// more than a small multiple of len(b): every length is checked against the
// bytes remaining before anything is allocated for it. The returned Command owns
// its memory; it does not alias b.
func Decode(b []byte) (Command, error) {
	var c Command
	if len(b) == 0 {
		return c, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	version := b[0]
	if version != codecV1 && version != codecV2 {
		return c, fmt.Errorf("%w: version %d, want %d or %d", ErrUnsupportedVersion, b[0], codecV1, codecV2)
	}
	if len(b) < 2 {
		return c, fmt.Errorf("%w: missing op byte", ErrMalformed)
	}
	c.Op = Op(b[1])
	switch c.Op {
	case OpSet, OpDelete, OpExpire, OpBarrier:
	case OpTouch, OpIncr, OpDeletePrefix, OpDeletePrefixChunk, OpBatch, OpRestoreChunk, OpRestoreCommit, OpRestoreAbort, OpNodeAddr, OpClusterID, OpTxn:
		if version == codecV1 {
			return Command{}, fmt.Errorf("%w: %d in a version 1 command", ErrUnknownOp, b[1])
		}
	default:
		return Command{}, fmt.Errorf("%w: %d", ErrUnknownOp, b[1])
	}
	d := decoder{b: b, off: 2}
	c.Now = d.varint("now")
	if version == codecV2 {
		d.flags(&c)
	}
	switch c.Op {
	case OpSet:
		c.Key = d.string("key")
		c.Value = d.bytes("value")
		c.ExpiresAt = d.varint("expiresAt")
	case OpDelete:
		c.Key = d.string("key")
	case OpExpire:
		n := d.uvarint("item count")
		if d.err == nil && n > uint64(d.remaining()/minExpireItemSize) {
			d.fail("item count %d exceeds the %d bytes remaining", n, d.remaining())
		}
		if d.err == nil && n > 0 {
			c.Items = make([]ExpireItem, n)
			for i := range c.Items {
				c.Items[i].Key = d.string("item key")
				c.Items[i].Revision = d.uvarint("item revision")
				if d.err != nil {
					break
				}
			}
		}
	case OpTouch:
		c.Key = d.string("key")
		c.ExpiresAt = d.varint("expiresAt")
	case OpIncr:
		c.Key = d.string("key")
		c.By = d.varint("by")
		c.ExpiresAt = d.varint("expiresAt")
	case OpDeletePrefix:
		c.Key = d.string("prefix")
	case OpDeletePrefixChunk:
		c.Key = d.string("prefix")
		c.Limit = d.uvarint("limit")
		c.Bound = d.uvarint("bound")
		c.After = d.string("after")
		if d.err == nil && c.Limit == 0 {
			d.fail("delete-prefix chunk with limit 0")
		}
		if d.err == nil && c.After != "" && !strings.HasPrefix(c.After, c.Key) {
			d.fail("delete-prefix chunk resumes after a key outside its prefix")
		}
	case OpBatch:
		c.Batch = d.batch()
	case OpRestoreChunk:
		c.RestoreID = d.uvarint("restore id")
		c.RestoreSeq = d.uvarint("restore chunk")
		c.RestoreData = d.bytes("restore data")
	case OpRestoreCommit:
		c.RestoreID = d.uvarint("restore id")
		c.RestoreSeq = d.uvarint("restore chunk count")
	case OpRestoreAbort:
		c.RestoreID = d.uvarint("restore id")
	case OpNodeAddr:
		c.NodeID = d.string("node id")
		c.HTTPAddr = d.string("http address")
	case OpClusterID:
		c.ClusterID = d.string("cluster id")
		if d.err == nil {
			if err := validClusterID(c.ClusterID); err != nil {
				d.fail("%v", err)
			}
		}
	case OpTxn:
		d.txn(&c)
	}
	if d.err == nil && version == codecV2 && c.version() != codecV2 {
		// Exactly one encoding per command: a command that fits version 1
		// must be written as version 1.
		d.fail("%s command without version 2 fields in version 2 layout", c.Op)
	}
	if d.err == nil && d.remaining() != 0 {
		d.fail("%d trailing bytes after %s command", d.remaining(), c.Op)
	}
	if d.err != nil {
		return Command{}, d.err
	}
	return c, nil
}

// minBatchWriteSize is the fewest bytes one write of a batch can take (its
// length byte and a delete's version, op, Now and key length).
const minBatchWriteSize = 5

// batch reads an OpBatch's writes and enforces its rules: at least MinBatch
// writes, each a Batchable command that decodes on its own, no key twice.
func (d *decoder) batch() []Command {
	n := d.uvarint("batch size")
	if d.err != nil {
		return nil
	}
	if n < MinBatch || n > uint64(d.remaining()/minBatchWriteSize) {
		d.fail("batch of %d writes (at least %d, and the %d bytes remaining)", n, MinBatch, d.remaining())
		return nil
	}
	ws := make([]Command, n)
	keys := make(map[string]struct{}, n)
	for i := range ws {
		raw := d.span("batch write")
		if d.err != nil {
			return nil
		}
		w, err := Decode(raw)
		if err != nil {
			d.fail("batch write %d: %v", i, err)
			return nil
		}
		if !w.Batchable() {
			d.fail("batch write %d is a %s command", i, w.Op)
			return nil
		}
		if _, dup := keys[w.Key]; dup {
			d.fail("batch writes key %q twice", w.Key)
			return nil
		}
		keys[w.Key] = struct{}{}
		ws[i] = w
	}
	return ws
}

// flags reads the version 2 flags and the fields they announce into c.
func (d *decoder) flags(c *Command) {
	f := d.uvarint("flags")
	if d.err != nil {
		return
	}
	if f&^flagsKnown != 0 || f&^opFlags[c.Op] != 0 {
		d.fail("flags %#x not valid for %s", f, c.Op)
		return
	}
	if f&flagIfMatch != 0 && f&flagIfAbsent != 0 {
		d.fail("both if-match and if-absent")
		return
	}
	if f&flagIfMatch != 0 {
		c.Cond = CondIfMatch
		c.CondVersion = d.uvarint("condition version")
	}
	if f&flagIfAbsent != 0 {
		c.Cond = CondIfAbsent
	}
	c.KeepTTL = f&flagKeepTTL != 0
	if f&flagIdem != 0 {
		c.IdemKey = d.string("idempotency key")
		if d.err == nil && c.IdemKey == "" {
			d.fail("empty idempotency key")
		}
		if d.err == nil && d.remaining() < FingerprintSize {
			d.fail("truncated fingerprint")
		}
		if d.err == nil {
			copy(c.Fingerprint[:], d.b[d.off:])
			d.off += FingerprintSize
		}
	}
}

// decoder reads fields from b; after the first failure every read returns a zero
// value and err keeps the first error, so callers check once at the end.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or truncated uvarint for %s", field)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad or truncated varint for %s", field)
		return 0
	}
	d.off += n
	return v
}

// span returns the next length-prefixed field, aliasing b.
func (d *decoder) span(field string) []byte {
	if d.err != nil {
		return nil
	}
	n, w := binary.Uvarint(d.b[d.off:])
	if w <= 0 {
		d.fail("bad or truncated uvarint for %s length", field)
		return nil
	}
	d.off += w
	if n > uint64(d.remaining()) {
		d.fail("%s length %d exceeds the %d bytes remaining", field, n, d.remaining())
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) string(field string) string {
	return string(d.span(field))
}

func (d *decoder) bytes(field string) []byte {
	s := d.span(field)
	if len(s) == 0 {
		return nil
	}
	return append([]byte(nil), s...)
}
