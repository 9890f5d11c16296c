// Package transport moves bytes between quorumkv nodes over one TCP peer port
// per node.
//
// The first byte of every connection selects its protocol:
//
//   - ProtoRaft: the rest of the connection belongs to hashicorp/raft. Mux
//     exposes it as a raft.StreamLayer (Mux.RaftLayer) for
//     raft.NewNetworkTransportWithConfig.
//   - ProtoRPC: a small framed, pipelined request/response protocol that the
//     store uses to forward writes to the leader and to ask it for a read
//     index. Payloads are opaque bytes with a one-byte method; this package
//     knows nothing of keys or raft semantics. Mux serves it with a Handler;
//     Client calls it over pooled persistent connections.
//
// Contracts the callers rely on:
//
//   - The caller's context deadline travels with every request and bounds the
//     handler's context on the remote node; the handler's context is also
//     cancelled when the connection or the Mux closes.
//   - Client.Call's error says what may have happened remotely:
//     errors.Is(err, ErrNotSent) means nothing did and a retry is safe;
//     *RemoteError means the handler ran and failed; ErrConnLost and
//     ErrNoResponse mean the request was sent and the outcome is unknown.
//   - Mux.Close and Client.Close stop and wait for every goroutine they
//     started; the Mux closes raft's connections too.
//   - With PeerTLS every connection is mutual TLS 1.3 between members of one
//     cluster: both ends check the peer's member identity
//     (quorumkv://<cluster>/node/<id>), dialers also the node id expected at
//     the address, and handlers learn the caller's id with PeerID(ctx).
//
// The wire format, deadline propagation and error meanings are described in
// DESIGN.md beside this file.
package transport
