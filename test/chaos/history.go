package chaos

import "time"

// Op kinds. New kinds (conditional PUT once it exists) are added here, in
// workload.next and in the model's step.
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
	Node   string `json:"node"`            // the node the request was sent to
	Call   int64  `json:"call"`
	Return int64  `json:"return"`

	Outcome   string `json:"outcome"`
	Code      string `json:"code,omitempty"` // HTTP status and error code, or transport error
	Found     bool   `json:"found,omitempty"`
	Got       string `json:"got,omitempty"` // get: the value read
	Version   uint64 `json:"version,omitempty"`
	Created   bool   `json:"created,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
	ExpiresAt int64  `json:"expiresAt,omitempty"` // Unix ms, as the server reported it
}

func (o Op) isWrite() bool { return o.Kind == opPut || o.Kind == opDelete }

// latency of a completed op.
func (o Op) latency() time.Duration { return time.Duration(o.Return - o.Call) }
