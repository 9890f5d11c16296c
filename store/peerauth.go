package store

import (
	"context"
	"fmt"

	"github.com/quorumkv/quorumkv/transport"
)

// Peer identity checks on membership (transport/DESIGN.md, "Peer identity").
//
// With peer TLS every peer connection is authenticated as one member of this
// cluster (a node id). The store uses that identity where a request names a
// node:
//
//   - register (a member recording its own HTTP address) must come from that
//     member's certificate;
//   - join (add a server, or move it to another peer address) is accepted
//     when it comes from the joining node's own certificate, or else only
//     after the leader has verified that the node listening at the requested
//     peer address holds the certificate of the requested id
//     (transport.PeerTLS.VerifyPeer). That second path serves an operator's
//     POST /cluster/nodes, which a member relays with its own certificate.
//
// So no member can get itself added under another member's id, nor point
// another member's id at an address it controls. Without peer TLS
// (Config.InsecurePeer) nothing is authenticated and nothing is checked.

// peerIDAt is the resolver the peer TLS dialers use (PeerTLS.ExpectPeers):
// the id raft's latest configuration holds for addr. GetConfiguration does
// not block on raft's main loop in hashicorp/raft v1.7.
func (s *Store) peerIDAt(addr string) (string, bool) {
	for _, srv := range s.raft.GetConfiguration().Configuration().Servers {
		if string(srv.Address) == addr {
			return string(srv.ID), true
		}
	}
	return "", false
}

// authorizeJoinRPC checks a join or register request received over the peer
// port against the identity of the member that sent it.
func (s *Store) authorizeJoinRPC(ctx context.Context, req JoinRequest, register bool) error {
	ptls := s.mux.PeerTLS()
	if ptls == nil {
		return nil
	}
	peer, ok := transport.PeerID(ctx)
	if !ok {
		return fmt.Errorf("%w: the request carries no authenticated peer identity", ErrInvalidNode)
	}
	if peer == req.ID {
		return nil
	}
	if register {
		return fmt.Errorf("%w: member %s may register only its own address, not %s's", ErrInvalidNode, peer, req.ID)
	}
	return s.verifyJoiner(ctx, req)
}

// verifyJoiner checks, before a join is applied, that the node at
// req.PeerAddr holds the certificate of member req.ID. A join that would
// change nothing (the same id already at that address) needs no proof.
func (s *Store) verifyJoiner(ctx context.Context, req JoinRequest) error {
	ptls := s.mux.PeerTLS()
	if ptls == nil {
		return nil
	}
	if id, ok := s.peerIDAt(req.PeerAddr); ok && id == req.ID {
		return nil
	}
	if err := ptls.VerifyPeer(ctx, req.PeerAddr, req.ID); err != nil {
		s.log.Warn("refused join: the node at the peer address did not prove it is the joining member", "id", req.ID, "peer", req.PeerAddr, "err", err)
		return fmt.Errorf("%w: the node at %s did not prove it holds the certificate of member %s of cluster %s: %v", ErrInvalidNode, req.PeerAddr, req.ID, ptls.Self.Cluster, err)
	}
	return nil
}
