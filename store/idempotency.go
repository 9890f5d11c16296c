package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"unicode"

	"github.com/quorumkv/quorumkv/fsm"
)

// Command time and the dedup table's budget, on the leader.
//
// Command time never runs backwards: the leader stamps every command with
// commandNow, at least the time of the last command its state machine applied,
// and the state machine lifts any command stamped earlier still (a proposal
// that waited behind later ones, a new leader not yet caught up) to its last
// command time (fsm.FSM.LastNow). A leader whose clock is behind therefore
// cannot bring an expired key back, stamp a TTL shorter than asked, or date a
// dedup entry in the past.
//
// The dedup table keeps every entry for its whole window (the state machine
// never evicts a young entry), so its size is bounded here, at admission: a
// new idempotent write that would take the table past
// Config.IdempotencyMaxBytes is answered fsm.StatusIdempotencyTableFull
// (ErrIdempotencyTableFull) without being proposed. The check counts the
// table as applied plus every admitted write not yet applied, so concurrent
// and batched writes cannot overshoot it together on one leader. The budget is
// a leader-local setting, not replicated state: nodes with different settings
// never diverge, the leader's applies; after a leader change the table may sit
// above the new leader's budget by what the old one had in flight.

// commandNow is the time the leader stamps into a command: its clock, once
// stampNow has found it within bound (clock.go), but never earlier than the
// last command applied here.
func (s *Store) commandNow() (int64, error) {
	now, err := s.stampNow()
	if err != nil {
		return 0, err
	}
	return max(now, s.fsm.LastNow()), nil
}

// commandClock is commandNow without the bound check, for scheduling and
// monitoring (when the next expiry is due, how old a dedup entry is); never
// stamped into a command.
func (s *Store) commandClock() int64 {
	return max(s.nowMs(), s.fsm.LastNow())
}

// idemAdmission is the leader's reservation book for new dedup entries.
type idemAdmission struct {
	mu       sync.Mutex
	inflight int64 // accounted bytes of admitted entries not yet released
}

// admitIdempotent decides whether cmd, an idempotent write stamped at
// cmd.Now, may be proposed. It returns a release function to call once the
// write's proposal is over (applied or failed), or ok false when the table is
// full of entries younger than the window.
func (s *Store) admitIdempotent(cmd *fsm.Command) (release func(), ok bool) {
	// A key already in the window is answered from the table (the original
	// result, or reused) and records nothing: always admitted, so a retry of
	// an applied write gets its result even while the table is full.
	if s.fsm.IdempotencyRecorded(cmd.IdemKey, cmd.Now) {
		return func() {}, true
	}
	need := fsm.IdempotencyCommandBytesBound(cmd)
	a := &s.idem
	a.mu.Lock()
	defer a.mu.Unlock()
	u := s.fsm.IdempotencyUsage()
	// An aged oldest entry is pruned by this very command (every command
	// prunes aged entries before recording), so the table does not grow for
	// good; otherwise the budget decides.
	aged := u.Entries > 0 && fsm.IdempotencyAged(u.Oldest, cmd.Now)
	if !aged && u.Bytes+a.inflight+need > s.cfg.IdempotencyMaxBytes {
		return nil, false
	}
	a.inflight += need
	return func() {
		a.mu.Lock()
		a.inflight -= need
		a.mu.Unlock()
	}, true
}

// maxIdempotencyScope bounds the scope part of a dedup table key: a longer
// scope (an API key name has no length limit) is replaced by its SHA-256, so
// a table key is at most maxIdempotencyScope + 1 + the key's own length.
const maxIdempotencyScope = 64

// scopedIdempotencyKey is the dedup table key of an idempotency key sent by
// caller scope: scope, a NUL byte, the key. Keys and scopes come from HTTP
// headers and API key names, which cannot hold NUL, so no two (scope, key)
// pairs share a table key. An empty scope leaves the key as it is.
func scopedIdempotencyKey(scope, key string) string {
	if scope == "" || key == "" {
		return key
	}
	if len(scope) > maxIdempotencyScope {
		sum := sha256.Sum256([]byte(scope))
		scope = "sha256:" + hex.EncodeToString(sum[:24])
	}
	return scope + "\x00" + key
}

// splitScopedIdempotencyKey undoes scopedIdempotencyKey: the scope ("" when
// there is none) and the caller's key. ok is false when the scope part is
// malformed (empty, too long, or holding a control character), which only a
// forged request can send.
func splitScopedIdempotencyKey(k string) (scope, key string, ok bool) {
	scope, key, found := strings.Cut(k, "\x00")
	if !found {
		return "", k, true
	}
	if scope == "" || len(scope) > maxIdempotencyScope || strings.IndexFunc(scope, unicode.IsControl) >= 0 {
		return "", "", false
	}
	return scope, key, true
}
