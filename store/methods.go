package store

import "context"

// The peer RPC methods this node serves on the peer port (transport's RPC
// protocol), all numbered here. A number is part of the wire protocol: nodes
// of an older build send and expect these values, so a number is never
// reused or renumbered, only added. Blocks of numbers are set aside per
// subject so that work in progress on one subject does not collide with
// another's; TestMethodNumbers checks that every number is unique and served.
const (
	// methodWrite: a follower forwards a client write to the leader.
	methodWrite uint8 = 1
	// methodReadIndex: a follower asks the leader for a linearizable read index
	// and the leader's clock at that point.
	methodReadIndex uint8 = 2
	// methodReadAt: a follower asks the leader to serve one read at a read
	// point the leader confirmed. Served by any node (readat.go).
	methodReadAt uint8 = 3
	// methodReadIndexGet: methodReadIndex for a batch of follower reads that
	// includes GETs. The request names the follower's applied index and the
	// keys; when the confirmed index is past that applied index, the leader
	// adds each key's item read at the read point, so the follower answers
	// those GETs without waiting and without a second call.
	methodReadIndexGet uint8 = 4

	// methodRestore: a follower forwards one restore command (chunk, commit or
	// abort) to the leader, which stamps Now and proposes it.
	methodRestore uint8 = 8

	// Membership (membership_rpc.go, promote.go).

	// methodJoin: add or update a server, or (register mode) record a
	// member's own HTTP address. Leader only.
	methodJoin uint8 = 16
	// methodRemove: remove a server. Leader only.
	methodRemove uint8 = 17
	// methodTransfer: move leadership. Leader only.
	methodTransfer uint8 = 18
	// methodNodeInfo: any node answers its ID, HTTP address and applied index;
	// the leader's monitor probes every server with it.
	methodNodeInfo uint8 = 19
	// methodNodeStats: the leader answers its monitor's view of every node,
	// for GET /cluster/nodes served by a follower.
	methodNodeStats uint8 = 20

	// methodClockPing: any node answers its wall clock (request: empty;
	// answer: format byte, varint Unix nanoseconds; clock_measure.go).
	methodClockPing uint8 = 24

	// Dashboard (40-44, report.go).

	// methodNodeReport: any member answers its own NodeReport (request:
	// format byte; answer: format byte, JSON) for GET /cluster/overview.
	// Served to authenticated members only.
	methodNodeReport uint8 = 40
)

// Numbers set aside for work in progress, so that parallel changes do not
// take the same one: 30-34 watch, 35-39 transactions, 40-44 dashboard,
// 45-49 follower reads, 50-59 clients and adoption. A method is added here,
// with its name in methodNames and its handler in peerHandlers.

// methodNames names each method in logs and in the forwarded-request metrics
// (the kind label of quorumkv_forwarded_requests_total).
var methodNames = map[uint8]string{
	methodWrite:        "write",
	methodReadIndex:    "read_index",
	methodReadAt:       "read",
	methodReadIndexGet: "read_index_get",
	methodRestore:      "restore",
	methodJoin:         "join",
	methodRemove:       "remove",
	methodTransfer:     "transfer",
	methodNodeInfo:     "node_info",
	methodNodeStats:    "node_stats",
	methodClockPing:    "clock_ping",
	methodNodeReport:   "node_report",
}

// rpcHandler serves one method: it decodes the request, answers in the
// method's format, and returns an error only for a request it cannot read
// (the transport then answers with the error and the caller gives up).
type rpcHandler func(ctx context.Context, req []byte) ([]byte, error)

// peerHandlers is the dispatch table handleRPC serves from, made once by Open.
func (s *Store) peerHandlers() map[uint8]rpcHandler {
	return map[uint8]rpcHandler{
		methodWrite:        s.serveWrite,
		methodReadIndex:    s.serveReadIndex,
		methodReadAt:       s.handleReadAtRPC,
		methodReadIndexGet: s.handleReadIndexGetRPC,
		methodRestore:      s.serveRestore,
		methodJoin:         s.serveJoin,
		methodRemove:       s.serveRemove,
		methodTransfer:     s.serveTransfer,
		methodNodeInfo:     s.serveNodeInfo,
		methodNodeStats:    s.serveNodeStats,
		methodClockPing:    s.handleClockPing,
		methodNodeReport:   s.handleNodeReport,
	}
}
