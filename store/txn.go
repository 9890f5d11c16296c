package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// Transactions: checks and operations on several keys, committed as one log
// entry (fsm.OpTxn) at one index, or not at all. The leader checks the
// request against the rules below (whoever sent it), stamps TTLs into
// absolute expiries with its clock, and proposes it; the state machine
// evaluates the checks and applies the operations (fsm/txn.go). A
// transaction that only checks and reads writes nothing to the log: it is
// answered as a linearizable read.

const (
	// DefaultMaxTxnItems is the default limit on a transaction's operations,
	// and separately on its checks.
	DefaultMaxTxnItems = 64
	// MaxTxnItems bounds Config.MaxTxnOps and Config.MaxTxnChecks (so a
	// forwarded transaction's keys fit writeFrameOverhead).
	MaxTxnItems = 128
)

// TxnCheck is one condition of a transaction: Kind says what it compares
// (TxnCheckVersion: the live version equals Version, 0 meaning missing;
// TxnCheckExists; TxnCheckAbsent; TxnCheckValue: the stored value equals
// Value, compact JSON, byte for byte).
type TxnCheck = fsm.TxnCheck

// TxnCheckKind values.
const (
	TxnCheckVersion = fsm.TxnCheckVersion
	TxnCheckExists  = fsm.TxnCheckExists
	TxnCheckAbsent  = fsm.TxnCheckAbsent
	TxnCheckValue   = fsm.TxnCheckValue
)

// TxnOpKind is what a transaction operation does.
type TxnOpKind string

const (
	TxnPut    TxnOpKind = "put"    // Value, with TTL or KeepTTL
	TxnDelete TxnOpKind = "delete" // a missing key is not an error
	TxnIncr   TxnOpKind = "incr"   // By; TTL applies when the key is created
	TxnPatch  TxnOpKind = "patch"  // replace a live key's expiry with TTL (0: none)
	TxnGet    TxnOpKind = "get"    // read the key at the transaction's index
)

// TxnOp is one operation of a transaction.
type TxnOp struct {
	Kind    TxnOpKind
	Key     string
	Value   []byte        // put: compact JSON
	TTL     time.Duration // put, incr, patch
	KeepTTL bool          // put
	By      int64         // incr
}

// TxnRequest is a transaction: every check must hold, then every operation
// applies at one log index. No key may appear twice among the operations.
type TxnRequest struct {
	Checks []TxnCheck
	Ops    []TxnOp
}

// TxnOpResult is one operation's result, like the single-key write's (get:
// like a read, with Found false for a missing key).
type TxnOpResult struct {
	Kind      TxnOpKind
	Key       string
	Created   bool   // put, incr
	Deleted   bool   // delete: a live key was removed
	Found     bool   // get
	Value     []byte // get: the stored JSON
	Int       int64  // incr: the new value
	Version   uint64 // put, incr, patch: the new version (the index); get: the key's version
	ExpiresAt time.Time
}

// TxnResult describes an applied transaction.
type TxnResult struct {
	// Index is the log index the transaction applied at; for a transaction
	// without writes, the applied index it was read at.
	Index   uint64
	Results []TxnOpResult
}

var (
	// ErrTxnCheckFailed: a transaction check did not hold; nothing was
	// written. Returned wrapped in a *TxnCheckError listing every failed check.
	ErrTxnCheckFailed = errors.New("transaction check failed")
	// ErrTxnOpFailed: a transaction operation cannot apply; nothing was
	// written. Returned wrapped in a *TxnOpError naming it.
	ErrTxnOpFailed = errors.New("transaction operation cannot apply")
	// ErrTxnReadTooLarge: the values a transaction's get operations return
	// together exceed the value limit (a TxnOpError's Cause).
	ErrTxnReadTooLarge = errors.New("values read exceed the value limit")
)

// TxnFailedCheck is a check that did not hold.
type TxnFailedCheck struct {
	Position       int // among the request's checks, from 0
	Key            string
	CurrentVersion uint64 // 0: the key is missing or expired
}

// TxnCheckError lists the failed checks of a transaction.
type TxnCheckError struct{ Failed []TxnFailedCheck }

func (e *TxnCheckError) Error() string {
	return fmt.Sprintf("%v: %d of the checks did not hold (first: check %d on key %q, current version %d)",
		ErrTxnCheckFailed, len(e.Failed), e.Failed[0].Position, e.Failed[0].Key, e.Failed[0].CurrentVersion)
}
func (e *TxnCheckError) Unwrap() error { return ErrTxnCheckFailed }

// TxnOpError names the operation that could not apply. Cause is
// ErrNotFound (patch of a missing key), ErrNotAnInteger, ErrOverflow (incr)
// or ErrTxnReadTooLarge.
type TxnOpError struct {
	Position       int
	Kind           TxnOpKind
	Key            string
	Cause          error
	CurrentVersion uint64
}

func (e *TxnOpError) Error() string {
	return fmt.Sprintf("%v: operation %d (%s %q): %v", ErrTxnOpFailed, e.Position, e.Kind, e.Key, e.Cause)
}
func (e *TxnOpError) Unwrap() error { return ErrTxnOpFailed }

// txnRequest is a transaction as it travels to the leader: its operations
// are writeRequests (fsm.OpTxnGet for a get) without conditions or keys.
type txnRequest struct {
	checks []fsm.TxnCheck
	ops    []writeRequest
}

var txnOpCodes = map[TxnOpKind]fsm.Op{TxnPut: fsm.OpSet, TxnDelete: fsm.OpDelete, TxnIncr: fsm.OpIncr, TxnPatch: fsm.OpTouch, TxnGet: fsm.OpTxnGet}

func txnKind(op fsm.Op) TxnOpKind {
	for k, o := range txnOpCodes {
		if o == op {
			return k
		}
	}
	return TxnOpKind(op.String())
}

// Txn commits req: every check holds and every operation applies at one
// log index, or nothing changes (*TxnCheckError, *TxnOpError). opts may
// carry an idempotency key (not with get operations: a recorded result keeps
// no values); conditions belong in req.Checks. A transaction without writes
// is a linearizable read.
func (s *Store) Txn(ctx context.Context, req TxnRequest, opts WriteOptions) (TxnResult, error) {
	if opts.IfMatch != nil || opts.IfAbsent {
		return TxnResult{}, invalid(ErrInvalidWrite, "a transaction takes its conditions as checks, not If-Match or If-None-Match")
	}
	tr := txnRequest{checks: req.Checks, ops: make([]writeRequest, len(req.Ops))}
	for i, op := range req.Ops {
		code, ok := txnOpCodes[op.Kind]
		if !ok {
			return TxnResult{}, invalid(ErrInvalidWrite, "operation %d has unknown kind %q; use put, delete, incr, patch or get", i, op.Kind)
		}
		if err := CheckTTL(op.TTL); err != nil {
			return TxnResult{}, err
		}
		tr.ops[i] = writeRequest{op: code, key: op.Key, value: op.Value, ttlMs: op.TTL.Milliseconds(), keepTTL: op.KeepTTL, by: op.By}
	}
	w := writeRequest{op: fsm.OpTxn, txn: &tr,
		idemKey: scopedIdempotencyKey(opts.IdempotencyScope, opts.IdempotencyKey), fingerprint: opts.Fingerprint}
	if err := s.checkTxn(w); err != nil {
		return TxnResult{}, err
	}
	if !tr.writes() {
		return s.readTxn(ctx, tr)
	}
	res, err := s.write(ctx, w)
	if err != nil {
		return TxnResult{}, err
	}
	if res.status != fsm.StatusOK {
		return TxnResult{}, res.err()
	}
	if res.txn == nil {
		return TxnResult{}, fmt.Errorf("store: the leader answered a transaction without its result")
	}
	return txnOutcome(tr, *res.txn, res.index)
}

// readTxn answers a transaction without writes at a linearizable read
// point, from this node's state machine.
func (s *Store) readTxn(ctx context.Context, tr txnRequest) (TxnResult, error) {
	now, _, err := s.prepareRead(ctx, ReadOptions{}, nil, nil)
	if err != nil {
		return TxnResult{}, err
	}
	index := s.fsm.AppliedIndex() // the state read reflects at least this index
	res := s.fsm.ReadTxn(tr.command(0, uint64(s.cfg.MaxValueBytes)), now)
	return txnOutcome(tr, res, index)
}

func (t txnRequest) writes() bool {
	for _, op := range t.ops {
		if op.op != fsm.OpTxnGet {
			return true
		}
	}
	return false
}

// command builds the fsm command of t stamped at now (absolute expiries).
func (t txnRequest) command(now int64, readBudget uint64) fsm.Command {
	cmd := fsm.Command{Op: fsm.OpTxn, Now: now, Checks: t.checks, Ops: make([]fsm.Command, len(t.ops)), ReadBudget: readBudget}
	for i, op := range t.ops {
		c := fsm.Command{Op: op.op, Key: op.key}
		switch op.op {
		case fsm.OpSet:
			c.Value, c.KeepTTL = op.value, op.keepTTL
		case fsm.OpIncr:
			c.By = op.by
		}
		if op.ttlMs > 0 && op.op != fsm.OpDelete && op.op != fsm.OpTxnGet && !op.keepTTL {
			c.ExpiresAt = now + op.ttlMs
		}
		cmd.Ops[i] = c
	}
	return cmd
}

// checkTxn applies the transaction rules: limits, each check's and
// operation's own rules, no key twice among the operations, the values
// together within the value limit, no get with an idempotency key.
func (s *Store) checkTxn(r writeRequest) error {
	t := r.txn
	maxValue := s.cfg.MaxValueBytes
	switch {
	case t == nil || len(t.ops) == 0:
		return invalid(ErrInvalidWrite, "a transaction needs at least one operation")
	case len(t.ops) > s.cfg.MaxTxnOps:
		return invalid(ErrInvalidWrite, "the transaction has %d operations; at most %d are allowed (--max-txn-ops)", len(t.ops), s.cfg.MaxTxnOps)
	case len(t.checks) > s.cfg.MaxTxnChecks:
		return invalid(ErrInvalidWrite, "the transaction has %d checks; at most %d are allowed (--max-txn-checks)", len(t.checks), s.cfg.MaxTxnChecks)
	}
	// The idempotency key's form, through the single-write rule.
	if err := (writeRequest{op: fsm.OpDelete, key: "k", idemKey: r.idemKey}).check(maxValue); err != nil {
		return err
	}
	var total int64
	for i, c := range t.checks {
		if err := CheckKey(c.Key); err != nil {
			return prefixReason(err, "check %d: ", i)
		}
		switch c.Kind {
		case TxnCheckVersion, TxnCheckExists, TxnCheckAbsent:
			if len(c.Value) != 0 || (c.Kind != TxnCheckVersion && c.Version != 0) {
				return invalid(ErrInvalidWrite, "check %d carries a field its kind does not compare", i)
			}
		case TxnCheckValue:
			if err := CheckValue(c.Value, maxValue); err != nil {
				return prefixReason(err, "check %d: ", i)
			}
			if c.Version != 0 {
				return invalid(ErrInvalidWrite, "check %d compares a value and a version; send two checks", i)
			}
		default:
			return invalid(ErrInvalidWrite, "check %d has unknown kind %d", i, c.Kind)
		}
		total += int64(len(c.Value))
	}
	keys := make(map[string]int, len(t.ops))
	for i, op := range t.ops {
		if op.cond != fsm.CondNone || op.idemKey != "" || op.txn != nil {
			return invalid(ErrInvalidWrite, "operation %d carries a condition or idempotency key of its own", i)
		}
		if op.op == fsm.OpTxnGet {
			if err := CheckKey(op.key); err != nil {
				return prefixReason(err, "operation %d: ", i)
			}
			if len(op.value) != 0 || op.ttlMs != 0 || op.keepTTL || op.by != 0 {
				return invalid(ErrInvalidWrite, "operation %d is a get and carries only a key", i)
			}
			if r.idemKey != "" {
				return invalid(ErrInvalidWrite, "operation %d is a get, and a transaction with an Idempotency-Key cannot read (its recorded result keeps no values); read in a separate transaction", i)
			}
		} else if err := op.check(maxValue); err != nil {
			return prefixReason(err, "operation %d: ", i)
		}
		if j, dup := keys[op.key]; dup {
			return invalid(ErrInvalidWrite, "operations %d and %d both use key %q; each key may appear at most once among the operations", j, i, op.key)
		}
		keys[op.key] = i
		total += int64(len(op.value))
	}
	if total > maxValue {
		return invalid(ErrValueTooLarge, "the transaction's values and compared values total %d bytes; together they may be at most %d bytes", total, maxValue)
	}
	return nil
}

// prefixReason puts where into an InvalidError's reason.
func prefixReason(err error, format string, args ...any) error {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return &InvalidError{Err: ie.Err, Reason: fmt.Sprintf(format, args...) + ie.Reason}
	}
	return err
}

// txnAsLeader checks a transaction, stamps it and commits it on this node's
// raft (see writeAsLeader, which calls it).
func (s *Store) txnAsLeader(ctx context.Context, req writeRequest) (writeResult, error) {
	if err := s.checkTxn(req); err != nil {
		return writeResult{}, err
	}
	if !req.txn.writes() {
		return writeResult{}, invalid(ErrInvalidWrite, "a transaction without writes is a read; it is not forwarded")
	}
	now, err := s.commandNow()
	if err != nil {
		return writeResult{}, fmt.Errorf("%w: %w", errNotCommitted, err)
	}
	if err := s.checkQuota(req, now); err != nil {
		return writeResult{}, err
	}
	cmd := req.txn.command(now, uint64(s.cfg.MaxValueBytes))
	cmd.IdemKey, cmd.Fingerprint = req.idemKey, req.fingerprint
	resp, index, err := s.proposeAdmitted(ctx, cmd)
	if err != nil {
		return notProposed(err)
	}
	r, ok := resp.(fsm.TxnResult)
	if !ok {
		return writeResult{}, fmt.Errorf("store: unexpected apply response %T to a transaction", resp)
	}
	res := writeResult{index: index, txn: &r}
	if r.Status == fsm.StatusIdempotencyKeyReused {
		res.status = r.Status
	}
	return res, nil
}

// txnOutcome turns the state machine's answer into Txn's result or error.
func txnOutcome(t txnRequest, r fsm.TxnResult, index uint64) (TxnResult, error) {
	switch r.Status {
	case fsm.StatusOK:
	case fsm.StatusIdempotencyKeyReused:
		return TxnResult{}, ErrIdempotencyKeyReused
	case fsm.StatusTxnCheckFailed:
		e := &TxnCheckError{}
		for _, fc := range r.FailedChecks {
			if fc.Position < 0 || fc.Position >= len(t.checks) {
				return TxnResult{}, fmt.Errorf("store: transaction answer names check %d of %d", fc.Position, len(t.checks))
			}
			e.Failed = append(e.Failed, TxnFailedCheck{Position: fc.Position, Key: t.checks[fc.Position].Key, CurrentVersion: fc.Current})
		}
		if len(e.Failed) == 0 {
			return TxnResult{}, errors.New("store: transaction check failure without a failed check")
		}
		return TxnResult{}, e
	case fsm.StatusTxnOpFailed:
		if r.FailedOp < 0 || r.FailedOp >= len(t.ops) {
			return TxnResult{}, fmt.Errorf("store: transaction answer names operation %d of %d", r.FailedOp, len(t.ops))
		}
		op := t.ops[r.FailedOp]
		e := &TxnOpError{Position: r.FailedOp, Kind: txnKind(op.op), Key: op.key, CurrentVersion: r.OpCurrent}
		switch r.OpStatus {
		case fsm.StatusNotFound:
			e.Cause = ErrNotFound
		case fsm.StatusNotAnInteger:
			e.Cause = ErrNotAnInteger
		case fsm.StatusOverflow:
			e.Cause = ErrOverflow
		case fsm.StatusTxnReadTooLarge:
			e.Cause = ErrTxnReadTooLarge
		default:
			e.Cause = fmt.Errorf("status %s", r.OpStatus)
		}
		return TxnResult{}, e
	default:
		return TxnResult{}, fmt.Errorf("store: unknown transaction status %s", r.Status)
	}
	if len(r.Results) != len(t.ops) {
		return TxnResult{}, fmt.Errorf("store: transaction of %d operations answered with %d results", len(t.ops), len(r.Results))
	}
	out := TxnResult{Index: index, Results: make([]TxnOpResult, len(t.ops))}
	for i, sub := range r.Results {
		o := TxnOpResult{Kind: txnKind(t.ops[i].op), Key: t.ops[i].key}
		switch x := sub.(type) {
		case fsm.SetResult:
			o.Created, o.Version, o.ExpiresAt = x.Created, x.Revision, msTime(x.ExpiresAt)
		case fsm.DeleteResult:
			o.Deleted = x.Deleted
		case fsm.IncrResult:
			o.Created, o.Int, o.Version, o.ExpiresAt = x.Created, x.Value, x.Revision, msTime(x.ExpiresAt)
		case fsm.TxnGetResult:
			o.Found, o.Value, o.Version, o.ExpiresAt = x.Found, x.Value, x.Revision, msTime(x.ExpiresAt)
		default:
			return TxnResult{}, fmt.Errorf("store: transaction operation %d answered with %T", i, sub)
		}
		out.Results[i] = o
	}
	return out, nil
}

// encodeTxnRequest writes forwarding format 3 (rpc.go):
//
//	3 OpTxn  uvarint len(idemKey) idemKey  fingerprint
//	uvarint len(checks) { kind  uvarint len(key) key  uvarint version  uvarint len(value) value }
//	uvarint len(ops) { op  uvarint len(key) key  uvarint len(value) value  varint ttlMs  keepTtl  varint by }
func encodeTxnRequest(r writeRequest) []byte {
	b := []byte{rpcFormatTxn, byte(fsm.OpTxn)}
	b = binary.AppendUvarint(b, uint64(len(r.idemKey)))
	b = append(b, r.idemKey...)
	b = append(b, r.fingerprint[:]...)
	b = binary.AppendUvarint(b, uint64(len(r.txn.checks)))
	for _, c := range r.txn.checks {
		b = append(b, byte(c.Kind))
		b = binary.AppendUvarint(b, uint64(len(c.Key)))
		b = append(b, c.Key...)
		b = binary.AppendUvarint(b, c.Version)
		b = binary.AppendUvarint(b, uint64(len(c.Value)))
		b = append(b, c.Value...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.txn.ops)))
	for _, op := range r.txn.ops {
		b = append(b, byte(op.op))
		b = binary.AppendUvarint(b, uint64(len(op.key)))
		b = append(b, op.key...)
		b = binary.AppendUvarint(b, uint64(len(op.value)))
		b = append(b, op.value...)
		b = binary.AppendVarint(b, op.ttlMs)
		b = append(b, flag(op.keepTTL))
		b = binary.AppendVarint(b, op.by)
	}
	return b
}

// decodeTxnRequest parses format 3. Counts are checked against the bytes
// left before anything is allocated for them; the leader applies the
// transaction rules (checkTxn) to what it decodes.
func decodeTxnRequest(b []byte) (writeRequest, error) {
	d := decoder{b: b}
	_ = d.byte()
	r := writeRequest{op: fsm.Op(d.byte()), txn: &txnRequest{}}
	if r.op != fsm.OpTxn {
		return writeRequest{}, fmt.Errorf("op %d in format %d", r.op, rpcFormatTxn)
	}
	r.idemKey = string(d.bytes())
	copy(r.fingerprint[:], d.fixed(fsm.FingerprintSize))
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/4) {
		return writeRequest{}, fmt.Errorf("check count %d exceeds the message", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		c := fsm.TxnCheck{Kind: fsm.TxnCheckKind(d.byte())}
		c.Key = string(d.bytes())
		c.Version = d.uvarint()
		if v := d.bytes(); len(v) > 0 {
			c.Value = append([]byte(nil), v...)
		}
		r.txn.checks = append(r.txn.checks, c)
	}
	n = d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/6) {
		return writeRequest{}, fmt.Errorf("operation count %d exceeds the message", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		op := writeRequest{op: fsm.Op(d.byte())}
		op.key = string(d.bytes())
		if v := d.bytes(); len(v) > 0 {
			op.value = append([]byte(nil), v...)
		}
		op.ttlMs = d.varint()
		op.keepTTL = d.byte() != 0
		op.by = d.varint()
		r.txn.ops = append(r.txn.ops, op)
	}
	if d.err != nil {
		return writeRequest{}, d.err
	}
	if len(d.b) != 0 {
		return writeRequest{}, errors.New("trailing bytes")
	}
	for _, op := range r.txn.ops {
		if _, ok := txnOpCodes[txnKind(op.op)]; !ok {
			return writeRequest{}, fmt.Errorf("unsupported transaction operation %d", op.op)
		}
	}
	if !bytes.Equal(encodeTxnRequest(r), b) {
		return writeRequest{}, errors.New("non-canonical encoding")
	}
	return r, nil
}
