package chaos

import "time"

// Op kinds. A conditional PUT is an opPut with IfMatch or IfAbsent set.
const (
	opGet    = "get"
	opPut    = "put"
	opDelete = "delete"
)

// Key classes: each has its own checker.
const (
	classReg = "reg" // register keys k00..kNN: linearizability (porcupine)
	classAck = "ack" // ack/<client>/<n>, written once: lost / invented writes
	classTTL = "ttl" // ttl/<client>/<n>, written once with a short TTL: expiry windows
)

// Outcomes of an operation.
const (
	outOK      = "ok"      // the server answered with a definite success (a GET miss included)
	outFail    = "fail"    // definitely had no effect (a write refused with no_leader, any failed read)
	outUnknown = "unknown" // a write that may or may not have taken effect
)

// Op is one client operation as recorded. Times are nanoseconds since the
// scenario's start (monotonic); wall-clock time is start.Add(Call).
type Op struct {
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	Class  string `json:"class"`
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"` // put: the unique value written
	TTLms  int64  `json:"ttlMs,omitempty"` // put: the TTL asked for
	// put: If-Match: "<IfMatch>" (when not 0), or If-None-Match: * (IfAbsent).
	IfMatch  uint64 `json:"ifMatch,omitempty"`
	IfAbsent bool   `json:"ifAbsent,omitempty"`
	Node     string `json:"node"` // the node the request was sent to
	Call     int64  `json:"call"`
	Return   int64  `json:"return"`

	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"` // HTTP status and error code, or transport error
	Found   bool   `json:"found,omitempty"`
	Got     string `json:"got,omitempty"` // get: the value read
	// Version: of the value read or written; for a 412 (Precond), the key's
	// currentVersion the server reported (0: absent).
	Version   uint64 `json:"version,omitempty"`
	Precond   bool   `json:"precondFailed,omitempty"` // a conditional put answered 412: nothing written
	Created   bool   `json:"created,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
	ExpiresAt int64  `json:"expiresAt,omitempty"` // Unix ms, as the server reported it
}

func (o Op) isWrite() bool { return o.Kind == opPut || o.Kind == opDelete }

// conditional: a PUT with If-Match or If-None-Match.
func (o Op) conditional() bool { return o.Kind == opPut && (o.IfMatch != 0 || o.IfAbsent) }

// latency of a completed op.
func (o Op) latency() time.Duration { return time.Duration(o.Return - o.Call) }
