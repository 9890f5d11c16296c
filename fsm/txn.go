package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Transactions (OpTxn): every check is evaluated against the state at the
// command's Now, then every operation is validated against that same state,
// and only when all checks hold and every operation can apply are the
// operations applied, in order, at the entry's index. Otherwise nothing
// changes and the result says why. A failed check or an operation that
// cannot apply is a result, never an error or a panic.
//
// The writes reuse the single-key apply helpers (set, delete, touch, incr),
// so a transaction changes each key exactly as the same write would on its
// own at that index; every key a transaction writes gets the index as its
// revision. Because no key appears twice among the operations, validating
// every operation against the state before the first write is the same as
// validating each one just before it applies.

// TxnCheckKind is what a transaction check compares.
type TxnCheckKind uint8

const (
	// TxnCheckVersion holds when the key's live revision equals Version
	// (0: the key is missing or expired).
	TxnCheckVersion TxnCheckKind = 1
	// TxnCheckExists holds when the key is live.
	TxnCheckExists TxnCheckKind = 2
	// TxnCheckAbsent holds when the key is missing or expired.
	TxnCheckAbsent TxnCheckKind = 3
	// TxnCheckValue holds when the key is live and its stored value equals
	// Value byte for byte (both compact JSON).
	TxnCheckValue TxnCheckKind = 4
)

// TxnCheck is one condition of a transaction.
type TxnCheck struct {
	Kind    TxnCheckKind
	Key     string
	Version uint64 // TxnCheckVersion
	Value   []byte // TxnCheckValue
}

// holds reports whether c holds for the key's state.
func (c TxnCheck) holds(cur item, live bool) bool {
	switch c.Kind {
	case TxnCheckVersion:
		if !live {
			return c.Version == 0
		}
		return cur.Revision == c.Version
	case TxnCheckExists:
		return live
	case TxnCheckAbsent:
		return !live
	case TxnCheckValue:
		return live && bytes.Equal(cur.value(), c.Value)
	}
	return false
}

// TxnFailedCheck names a check that did not hold: its position among the
// checks and the key's live revision (0 when missing or expired).
type TxnFailedCheck struct {
	Position int
	Current  uint64
}

// TxnGetResult is the answer of an OpTxnGet: the key's live entry at the
// transaction's index, if any. Value aliases the stored value: read only.
type TxnGetResult struct {
	Found     bool
	Value     []byte
	Revision  uint64
	ExpiresAt int64
}

// TxnResult is the outcome of OpTxn.
type TxnResult struct {
	// Status: StatusOK (everything applied), StatusTxnCheckFailed (see
	// FailedChecks), StatusTxnOpFailed (see FailedOp), or
	// StatusIdempotencyKeyReused. Only StatusOK changed anything.
	Status Status
	// FailedChecks lists every check that did not hold, in order.
	FailedChecks []TxnFailedCheck
	// FailedOp is the position of the first operation that cannot apply,
	// OpStatus why (StatusNotFound: touch of a missing key; StatusNotAnInteger,
	// StatusOverflow: incr; StatusTxnReadTooLarge: the get operations up to
	// this one return more than ReadBudget bytes), OpCurrent the key's live
	// revision (0 when absent).
	FailedOp  int
	OpStatus  Status
	OpCurrent uint64
	// Results holds one result per operation when Status is StatusOK:
	// SetResult (set, touch), DeleteResult, IncrResult or TxnGetResult.
	Results []interface{}
}

// txn applies an OpTxn at index; f.mu is held for writing.
func (f *FSM) txn(index uint64, cmd *Command) TxnResult {
	res := f.evalTxn(cmd)
	if res.Status != StatusOK {
		return res
	}
	res.Results = make([]interface{}, len(cmd.Ops))
	for i := range cmd.Ops {
		op := &cmd.Ops[i]
		switch op.Op {
		case OpSet:
			res.Results[i] = f.set(index, op)
		case OpDelete:
			res.Results[i] = f.delete(index, op)
		case OpTouch:
			res.Results[i] = f.touch(index, op)
		case OpIncr:
			res.Results[i] = f.incr(index, op)
		case OpTxnGet:
			res.Results[i] = f.txnGet(op.Key, op.Now)
		}
	}
	return res
}

// evalTxn evaluates cmd's checks and validates its operations against the
// current state without changing it (f.mu held, for reading at least). It
// stamps every operation with the transaction's Now. A StatusOK result has no
// Results yet.
func (f *FSM) evalTxn(cmd *Command) TxnResult {
	var failed []TxnFailedCheck
	for i, c := range cmd.Checks {
		cur, live := f.live(c.Key, cmd.Now)
		if !c.holds(cur, live) {
			var current uint64
			if live {
				current = cur.Revision
			}
			failed = append(failed, TxnFailedCheck{Position: i, Current: current})
		}
	}
	if failed != nil {
		return TxnResult{Status: StatusTxnCheckFailed, FailedChecks: failed}
	}
	var read uint64
	for i := range cmd.Ops {
		op := &cmd.Ops[i]
		op.Now = cmd.Now
		cur, live := f.live(op.Key, cmd.Now)
		st := StatusOK
		switch op.Op {
		case OpTouch:
			if !live {
				st = StatusNotFound
			}
		case OpIncr:
			if live {
				old, ok := parseInt64(cur.value())
				switch {
				case !ok:
					st = StatusNotAnInteger
				case (op.By > 0 && old+op.By < old) || (op.By < 0 && old+op.By > old):
					st = StatusOverflow
				}
			}
		case OpTxnGet:
			if live {
				read += uint64(len(cur.value()))
				if read > cmd.ReadBudget {
					st = StatusTxnReadTooLarge
				}
			}
		}
		if st != StatusOK {
			var current uint64
			if live {
				current = cur.Revision
			}
			return TxnResult{Status: StatusTxnOpFailed, FailedOp: i, OpStatus: st, OpCurrent: current}
		}
	}
	return TxnResult{Status: StatusOK}
}

func (f *FSM) txnGet(key string, now int64) TxnGetResult {
	cur, live := f.live(key, now)
	if !live {
		return TxnGetResult{}
	}
	return TxnGetResult{Found: true, Value: cur.value(), Revision: cur.Revision, ExpiresAt: cur.ExpiresAt}
}

// ReadTxn answers a transaction that only checks and reads (no writes) at
// command time now, against the state as applied so far, under one read lock:
// a consistent multi-key read. It changes nothing and needs no log entry; the
// caller decides which applied index is recent enough (a linearizable read
// point). The result is what Apply would answer for the same command at the
// current index.
func (f *FSM) ReadTxn(cmd Command, now int64) TxnResult {
	cmd.Now = max(now, f.LastNow())
	cmd.Ops = append([]Command(nil), cmd.Ops...)
	f.mu.RLock()
	defer f.mu.RUnlock()
	res := f.evalTxn(&cmd)
	if res.Status != StatusOK {
		return res
	}
	res.Results = make([]interface{}, len(cmd.Ops))
	for i, op := range cmd.Ops {
		if op.Op != OpTxnGet {
			panic(fmt.Sprintf("fsm: ReadTxn given a %s operation", op.Op))
		}
		res.Results[i] = f.txnGet(op.Key, cmd.Now)
	}
	return res
}

// TxnWrites reports whether a transaction's operations write anything.
func TxnWrites(ops []Command) bool {
	for _, op := range ops {
		if op.Op != OpTxnGet {
			return true
		}
	}
	return false
}

// Codec.

func (c Command) appendTxn(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, c.ReadBudget)
	dst = binary.AppendUvarint(dst, uint64(len(c.Checks)))
	for _, ch := range c.Checks {
		dst = append(dst, byte(ch.Kind))
		dst = appendString(dst, ch.Key)
		switch ch.Kind {
		case TxnCheckVersion:
			dst = binary.AppendUvarint(dst, ch.Version)
		case TxnCheckValue:
			dst = binary.AppendUvarint(dst, uint64(len(ch.Value)))
			dst = append(dst, ch.Value...)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Ops)))
	for _, op := range c.Ops {
		dst = binary.AppendUvarint(dst, uint64(op.encodedSize()))
		dst = op.AppendEncode(dst)
	}
	return dst
}

func (c Command) txnSize() int {
	n := uvarintLen(c.ReadBudget) + uvarintLen(uint64(len(c.Checks)))
	for _, ch := range c.Checks {
		n += 1 + uvarintLen(uint64(len(ch.Key))) + len(ch.Key)
		switch ch.Kind {
		case TxnCheckVersion:
			n += uvarintLen(ch.Version)
		case TxnCheckValue:
			n += uvarintLen(uint64(len(ch.Value))) + len(ch.Value)
		}
	}
	n += uvarintLen(uint64(len(c.Ops)))
	for _, op := range c.Ops {
		s := op.encodedSize()
		n += uvarintLen(uint64(s)) + s
	}
	return n
}

// Smallest encodings, to refuse counts the input cannot hold before
// allocating for them: a check is a kind byte and an empty key's length; an
// operation is its length byte and a delete of an empty key (version, op,
// Now, key length).
const (
	minTxnCheckSize = 2
	minTxnOpSize    = 5
)

// txn reads an OpTxn's fields into c and enforces its rules: at least one
// operation that writes, no key twice among the operations, each operation a
// set, delete, touch, incr or get with Now 0 and no condition or idempotency
// key, and no get in a transaction with an idempotency key (a recorded
// result holds no values).
func (d *decoder) txn(c *Command) {
	c.ReadBudget = d.uvarint("read budget")
	n := d.uvarint("check count")
	if d.err == nil && n > uint64(d.remaining()/minTxnCheckSize) {
		d.fail("check count %d exceeds the %d bytes remaining", n, d.remaining())
	}
	if d.err != nil {
		return
	}
	if n > 0 {
		c.Checks = make([]TxnCheck, n)
	}
	for i := range c.Checks {
		ch := &c.Checks[i]
		if d.err == nil && d.remaining() < 1 {
			d.fail("truncated check")
		}
		if d.err != nil {
			return
		}
		ch.Kind = TxnCheckKind(d.b[d.off])
		d.off++
		ch.Key = d.string("check key")
		switch ch.Kind {
		case TxnCheckVersion:
			ch.Version = d.uvarint("check version")
		case TxnCheckExists, TxnCheckAbsent:
		case TxnCheckValue:
			ch.Value = d.bytes("check value")
		default:
			d.fail("unknown check kind %d", ch.Kind)
		}
	}
	n = d.uvarint("operation count")
	if d.err == nil && (n == 0 || n > uint64(d.remaining()/minTxnOpSize)) {
		d.fail("operation count %d (at least 1, and the %d bytes remaining)", n, d.remaining())
	}
	if d.err != nil {
		return
	}
	c.Ops = make([]Command, n)
	keys := make(map[string]struct{}, n)
	for i := range c.Ops {
		raw := d.span("operation")
		if d.err != nil {
			return
		}
		op, err := decodeTxnOp(raw)
		if err != nil {
			d.fail("operation %d: %v", i, err)
			return
		}
		if _, dup := keys[op.Key]; dup {
			d.fail("transaction operates on key %q twice", op.Key)
			return
		}
		keys[op.Key] = struct{}{}
		if op.Op == OpTxnGet && c.IdemKey != "" {
			d.fail("a transaction with an idempotency key cannot read (operation %d is a get)", i)
			return
		}
		c.Ops[i] = op
	}
	if !TxnWrites(c.Ops) {
		d.fail("transaction without a write (a read-only transaction is not logged)")
	}
}

// decodeTxnOp decodes one operation of a transaction.
func decodeTxnOp(raw []byte) (Command, error) {
	if len(raw) >= 2 && Op(raw[1]) == OpTxnGet {
		if raw[0] != codecV2 {
			return Command{}, fmt.Errorf("%w: get in a version %d layout", ErrMalformed, raw[0])
		}
		d := decoder{b: raw, off: 2}
		op := Command{Op: OpTxnGet, Now: d.varint("now")}
		if f := d.uvarint("flags"); d.err == nil && f != 0 {
			d.fail("flags %#x not valid for get", f)
		}
		op.Key = d.string("key")
		if d.err == nil && d.remaining() != 0 {
			d.fail("%d trailing bytes after get", d.remaining())
		}
		if d.err != nil {
			return Command{}, d.err
		}
		return op, checkTxnOp(op)
	}
	op, err := Decode(raw)
	if err != nil {
		return Command{}, err
	}
	return op, checkTxnOp(op)
}

func checkTxnOp(op Command) error {
	switch {
	case op.Op != OpTxnGet && !op.Batchable():
		return fmt.Errorf("%w: a %s command cannot be a transaction operation", ErrMalformed, op.Op)
	case op.Now != 0:
		return fmt.Errorf("%w: an operation carries its own time (the transaction's applies)", ErrMalformed)
	case op.Cond != CondNone || op.IdemKey != "":
		return fmt.Errorf("%w: an operation carries a condition or idempotency key (use the transaction's)", ErrMalformed)
	}
	return nil
}

// Recorded transaction results (the dedup table, snapshots, and the
// forwarding protocol, which carries them from the leader):
//
//	txn: 5 status  uvarint len(FailedChecks) {uvarint Position  uvarint Current}
//	     uvarint FailedOp  byte OpStatus  uvarint OpCurrent
//	     uvarint len(Results) {uvarint len(r) r}   (r: set, delete, incr or get)
//	get: 6 status found  uvarint len(Value) Value  uvarint Revision  varint ExpiresAt
const (
	resultTxn    = 5
	resultTxnGet = 6
)

func appendTxnResult(b []byte, r TxnResult) []byte {
	b = append(b, resultTxn, byte(r.Status))
	b = binary.AppendUvarint(b, uint64(len(r.FailedChecks)))
	for _, fc := range r.FailedChecks {
		b = binary.AppendUvarint(b, uint64(fc.Position))
		b = binary.AppendUvarint(b, fc.Current)
	}
	b = binary.AppendUvarint(b, uint64(r.FailedOp))
	b = append(b, byte(r.OpStatus))
	b = binary.AppendUvarint(b, r.OpCurrent)
	b = binary.AppendUvarint(b, uint64(len(r.Results)))
	for _, sub := range r.Results {
		e := encodeResult(sub)
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

func appendTxnGetResult(b []byte, r TxnGetResult) []byte {
	b = append(b, resultTxnGet, byte(StatusOK), boolByte(r.Found))
	b = binary.AppendUvarint(b, uint64(len(r.Value)))
	b = append(b, r.Value...)
	b = binary.AppendUvarint(b, r.Revision)
	return binary.AppendVarint(b, r.ExpiresAt)
}

// decodeTxnResult reads the fields of a txn result after its tag and status.
func (d *decoder) txnResult(st Status) TxnResult {
	r := TxnResult{Status: st}
	n := d.uvarint("failed check count")
	if d.err == nil && n > uint64(d.remaining()/2) {
		d.fail("failed check count %d", n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		pos := d.uvarint("failed check position")
		r.FailedChecks = append(r.FailedChecks, TxnFailedCheck{Position: int(min(pos, 1<<31)), Current: d.uvarint("failed check current")})
	}
	r.FailedOp = int(min(d.uvarint("failed op"), 1<<31))
	if d.err == nil && d.remaining() < 1 {
		d.fail("truncated result")
	}
	if d.err != nil {
		return TxnResult{}
	}
	r.OpStatus = Status(d.b[d.off])
	d.off++
	r.OpCurrent = d.uvarint("op current")
	n = d.uvarint("result count")
	if d.err == nil && n > uint64(d.remaining()) {
		d.fail("result count %d", n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		raw := d.span("operation result")
		if d.err != nil {
			break
		}
		sub, err := decodeResult(raw)
		if err != nil {
			d.fail("operation result %d: %v", i, err)
			break
		}
		if _, nested := sub.(TxnResult); nested {
			d.fail("nested transaction result")
			break
		}
		r.Results = append(r.Results, sub)
	}
	return r
}

// EncodeTxnResult returns the binary form of r (the recorded form above),
// for carrying a leader's answer to the node that forwarded the transaction.
func EncodeTxnResult(r TxnResult) []byte { return appendTxnResult(nil, r) }

// DecodeTxnResult parses EncodeTxnResult's output strictly.
func DecodeTxnResult(b []byte) (TxnResult, error) {
	res, err := decodeResult(b)
	if err != nil {
		return TxnResult{}, err
	}
	r, ok := res.(TxnResult)
	if !ok {
		return TxnResult{}, fmt.Errorf("%w: a %T, not a transaction result", errBadResult, res)
	}
	return r, nil
}

// IdempotencyCommandBytesBound is the largest accounted size the dedup entry
// of cmd can have, whatever its result: what a proposer reserves for it.
func IdempotencyCommandBytesBound(cmd *Command) int64 {
	if cmd.Op != OpTxn {
		return IdempotencyEntryBytesBound(cmd.IdemKey)
	}
	// Tag, status, the failure fields and one length-prefixed result per
	// operation (a recorded transaction holds no get values).
	n := 2 + 3*binary.MaxVarintLen64 + 1 + binary.MaxVarintLen64
	n += binary.MaxVarintLen64 + len(cmd.Checks)*2*binary.MaxVarintLen64
	n += len(cmd.Ops) * (binary.MaxVarintLen64 + maxRecordedResult)
	return IdempotencyEntryBytes(cmd.IdemKey, n)
}
