// Package sessions holds what the session stores for Go web frameworks
// share: how session data is kept as a quorumkv value. The stores themselves
// are in sessions/gorillastore (gorilla/sessions) and sessions/scsstore
// (alexedwards/scs); each replaces that library's Redis store.
package sessions

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// DefaultPrefix is the key prefix the stores use unless told otherwise.
const DefaultPrefix = "session/"

// DefaultTimeout bounds one store operation (a read, a write or a delete,
// retries included) so that a web request never hangs on an unreachable
// cluster: long enough to ride out a leader election.
const DefaultTimeout = 10 * time.Second

// Encode renders opaque session bytes (a gob, scs's codec output) as a
// quorumkv value: a JSON string of their base64, because values are JSON.
func Encode(b []byte) json.RawMessage {
	v, _ := json.Marshal(b) // []byte always marshals (as base64)
	return v
}

// Decode reverses Encode on the value of item.
func Decode(it client.Item) ([]byte, error) {
	var b []byte
	if err := json.Unmarshal(it.Value, &b); err != nil {
		return nil, fmt.Errorf("sessions: the value at %q is not session data (a JSON base64 string): %w", it.Key, err)
	}
	return b, nil
}

// TTL turns an expiry into the TTL of the write that stores the session,
// rounded up to the millisecond quorumkv keeps: ok is false when the session
// has already expired (it should be deleted, not written).
func TTL(expiry, now time.Time) (ttl time.Duration, ok bool) {
	d := expiry.Sub(now)
	if d < time.Millisecond {
		return 0, false
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond), true
}
