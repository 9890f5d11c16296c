package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op identifies the kind of a Command. Values are part of the wire format: never
// renumber or reuse one.
type Op uint8

const (
	OpSet     Op = 1
	OpDelete  Op = 2
	OpExpire  Op = 3
	OpBarrier Op = 4 // no state change; proposed by a new leader to mark its term. Only advances the applied index.
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
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// CodecVersion is the first byte of every encoded command. A replica refuses
// (Decode fails, Apply panics) any other version rather than guess at its layout.
const CodecVersion = 1

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
// leaves them zero. An empty Value or an empty Items list decodes as nil.
type Command struct {
	Op        Op
	Key       string       // set, delete
	Value     []byte       // set
	ExpiresAt int64        // set: absolute Unix ms, 0 = never
	Now       int64        // every op: the proposer's clock in Unix ms when proposing; used to decide whether an existing entry is live
	Items     []ExpireItem // expire
}

// Encode returns the binary form of c:
//
//	byte 0   CodecVersion
//	byte 1   Op
//	varint   Now
//	set:     uvarint len(Key), Key, uvarint len(Value), Value, varint ExpiresAt
//	delete:  uvarint len(Key), Key
//	expire:  uvarint len(Items), then per item: uvarint len(Key), Key, uvarint Revision
//	barrier: nothing more
//
// An unknown Op is encoded as version, op and Now; Decode rejects it.
func (c Command) Encode() []byte {
	return c.AppendEncode(make([]byte, 0, c.encodedSize()))
}

// AppendEncode appends the encoding of c (see Encode) to dst and returns the
// extended slice.
func (c Command) AppendEncode(dst []byte) []byte {
	dst = append(dst, CodecVersion, byte(c.Op))
	dst = binary.AppendVarint(dst, c.Now)
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
	}
	return dst
}

func (c Command) encodedSize() int {
	n := 2 + varintLen(c.Now)
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
	if b[0] != CodecVersion {
		return c, fmt.Errorf("%w: version %d, want %d", ErrUnsupportedVersion, b[0], CodecVersion)
	}
	if len(b) < 2 {
		return c, fmt.Errorf("%w: missing op byte", ErrMalformed)
	}
	c.Op = Op(b[1])
	switch c.Op {
	case OpSet, OpDelete, OpExpire, OpBarrier:
	default:
		return Command{}, fmt.Errorf("%w: %d", ErrUnknownOp, b[1])
	}
	d := decoder{b: b, off: 2}
	c.Now = d.varint("now")
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
	}
	if d.err == nil && d.remaining() != 0 {
		d.fail("%d trailing bytes after %s command", d.remaining(), c.Op)
	}
	if d.err != nil {
		return Command{}, d.err
	}
	return c, nil
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
